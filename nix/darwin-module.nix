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
  nixSettings = import ./nix-settings.nix { inherit cfg; };
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

      launchd.daemons.peernix.serviceConfig = {
        ProgramArguments =
          [ "${cfg.package}/bin/peernix" ]
          ++ import ./serve-args.nix { inherit lib cfg; }
          ++ optionals (cfg.secretKeyFile != null) [
            "--secret-key-file"
            cfg.secretKeyFile
          ];
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
