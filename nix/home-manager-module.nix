# services.peernix-app for home-manager: the tray app, started hidden at login (a systemd user service
# in the graphical session on Linux, a launchd agent on macOS).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkEnableOption mkIf mkMerge;
  cfg = config.services.peernix-app;
  # --hidden: in the tray only, as the app's own "Start at login" starts it.
  command = [
    "${cfg.package}/bin/peernix-app"
    "--hidden"
  ];
in
{
  options.services.peernix-app = {
    enable = mkEnableOption "the Peernix tray app, started at login";

    # The flake's module sets it to the flake's own.
    package = lib.mkPackageOption pkgs "peernix-app" { };
  };

  config = mkIf cfg.enable (mkMerge [
    { home.packages = [ cfg.package ]; }
    (mkIf pkgs.stdenv.hostPlatform.isLinux {
      systemd.user.services.peernix-app = {
        Unit = {
          Description = "Peernix tray app";
          After = [
            "graphical-session.target"
            "tray.target"
          ];
          PartOf = [ "graphical-session.target" ];
          # A tray icon needs the tray: without one the app would start with nowhere to show itself.
          Requires = [ "tray.target" ];
        };
        Service = {
          ExecStart = lib.concatStringsSep " " command;
          Restart = "on-failure";
          RestartSec = 5;
        };
        Install.WantedBy = [ "graphical-session.target" ];
      };
    })
    (mkIf pkgs.stdenv.hostPlatform.isDarwin {
      launchd.agents.peernix-app = {
        enable = true;
        config = {
          ProgramArguments = command;
          RunAtLoad = true;
          KeepAlive.SuccessfulExit = false;
          ProcessType = "Interactive";
        };
      };
    })
  ]);
}
