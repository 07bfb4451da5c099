# services.peernix for nix-darwin: the headless daemon as a launchd daemon (root, started at boot).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption mkIf mkMerge types optionals;
  cfg = config.services.peernix;
  nixSettings = import ./nix-settings.nix { inherit lib cfg; };
in
{
  options.services.peernix = import ./daemon-options.nix { inherit lib pkgs; } // {
    logFile = mkOption {
      type = types.str;
      default = "/var/log/peernix.log";
      description = "Where the daemon's output goes.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = nixSettings.assertions;

      # `peernix status`, `peernix sharing on|off`, `peernix nix-conf` for the administrator.
      environment.systemPackages = [ cfg.package ];

      # nix-darwin starts a `command` through `/bin/wait4path /nix/store`: at boot launchd runs daemons
      # before the volume holding /nix/store is mounted.
      launchd.daemons.peernix.command = lib.escapeShellArgs (
        [ "${cfg.package}/bin/peernix" ]
        ++ import ./serve-args.nix { inherit lib cfg; }
        ++ optionals (cfg.secretKeyFile != null) [
          "--secret-key-file"
          cfg.secretKeyFile
        ]
      );
      launchd.daemons.peernix.serviceConfig = {
        EnvironmentVariables.PEERNIX_STATE_DIR = cfg.stateDir;
        RunAtLoad = true;
        # Restarted when it fails, not after a clean stop.
        KeepAlive.SuccessfulExit = false;
        ThrottleInterval = 5;
        ExitTimeOut = 20;
        StandardOutPath = cfg.logFile;
        StandardErrorPath = cfg.logFile;
      };
    }
    (mkIf cfg.addToNixSettings { nix.settings = nixSettings.settings; })
  ]);
}
