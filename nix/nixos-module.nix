# services.peernix for NixOS: the headless daemon as a sandboxed systemd service.
{
  config,
  lib,
  pkgs,
  utils,
  ...
}:
let
  inherit (lib) mkOption mkIf mkMerge types optional;
  cfg = config.services.peernix;
  nixSettings = import ./nix-settings.nix { inherit lib cfg; };
  portOf =
    addr:
    let
      m = builtins.match ".*:([0-9]+)" addr;
    in
    if m == null then throw "services.peernix: no port in \"${addr}\"" else lib.toInt (builtins.head m);
  # systemd hands the key file to the service (whatever user it runs as) in its credentials directory, %d.
  keyArg = lib.optionalString (cfg.secretKeyFile != null) " --secret-key-file %d/secret-key";
in
{
  options.services.peernix = import ./daemon-options.nix { inherit lib pkgs; } // {
    dynamicUser = mkOption {
      type = types.bool;
      default = true;
      description = "Run as a user systemd allocates when the service starts (`user`/`group` name it).";
    };

    user = mkOption {
      type = types.str;
      default = "peernix";
      description = "The user the daemon runs as; created when `dynamicUser` is off and it is \"peernix\".";
    };

    group = mkOption {
      type = types.str;
      default = "peernix";
      description = "The daemon's group; created when `dynamicUser` is off and it is \"peernix\".";
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the share port (TCP), mDNS (5353/udp) when `mdns` is on, and `udpPort` when set.";
    };

    udpPort = mkOption {
      type = types.nullOr types.port;
      default = null;
      example = 9999;
      description = "A UDP port to open with `openFirewall`, for LANs mixing Peernix with Go peernix peers.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = nixSettings.assertions ++ [
        {
          assertion = lib.hasPrefix "/var/lib/" cfg.stateDir;
          message = "services.peernix.stateDir must be under /var/lib/ (systemd's StateDirectory= makes it for the service's user), got \"${cfg.stateDir}\".";
        }
      ];

      # `peernix status`, `peernix sharing on|off`, `peernix nix-conf` for the administrator.
      environment.systemPackages = [ cfg.package ];

      # The daemon's user must be let in by the nix-daemon where allowed-users is narrowed (extra-:
      # added to the list, never replacing it).
      nix.settings.extra-allowed-users = [ cfg.user ];

      systemd.services.peernix = {
        description = "Peernix: LAN peer-to-peer Nix binary cache";
        wantedBy = [ "multi-user.target" ];
        wants = [ "network-online.target" ];
        # Everything Peernix serves comes through the nix-daemon.
        requires = [ "nix-daemon.socket" ];
        after = [
          "network-online.target"
          "nix-daemon.socket"
        ];
        environment.PEERNIX_STATE_DIR = cfg.stateDir;
        serviceConfig = {
          Type = "exec";
          ExecStart = utils.escapeSystemdExecArgs ([ "${cfg.package}/bin/peernix" ] ++ import ./serve-args.nix { inherit lib cfg; }) + keyArg;
          LoadCredential = optional (cfg.secretKeyFile != null) "secret-key:${cfg.secretKeyFile}";
          DynamicUser = cfg.dynamicUser;
          User = cfg.user;
          Group = cfg.group;
          StateDirectory = lib.removePrefix "/var/lib/" cfg.stateDir;
          StateDirectoryMode = "0700";
          UMask = "0077";
          Restart = "on-failure";
          RestartSec = 5;
          # The first SIGTERM lets running transfers finish for up to 10 s.
          TimeoutStopSec = 20;

          NoNewPrivileges = true;
          CapabilityBoundingSet = [ "" ];
          ProtectSystem = "strict";
          ProtectHome = true;
          PrivateTmp = true;
          PrivateDevices = true;
          DevicePolicy = "closed";
          ProtectKernelTunables = true;
          ProtectKernelModules = true;
          ProtectKernelLogs = true;
          ProtectControlGroups = true;
          ProtectClock = true;
          ProtectHostname = true;
          ProtectProc = "invisible";
          # AF_UNIX: the nix-daemon's socket; AF_NETLINK: listing interfaces for mDNS.
          RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
            "AF_NETLINK"
          ];
          RestrictNamespaces = true;
          RestrictRealtime = true;
          RestrictSUIDSGID = true;
          LockPersonality = true;
          SystemCallArchitectures = "native";
          SystemCallFilter = [
            "@system-service"
            "~@privileged"
          ];
          # A call outside the filter fails (EPERM) rather than killing Node.
          SystemCallErrorNumber = "EPERM";
          # V8 compiles to executable memory: MemoryDenyWriteExecute would stop Node.
        };
      };
    }
    (mkIf (!cfg.dynamicUser && cfg.user == "peernix") {
      users.users.peernix = {
        isSystemUser = true;
        group = cfg.group;
      };
    })
    (mkIf (!cfg.dynamicUser && cfg.group == "peernix") { users.groups.peernix = { }; })
    (mkIf cfg.openFirewall {
      networking.firewall.allowedTCPPorts = [ (portOf cfg.shareListen) ];
      networking.firewall.allowedUDPPorts = optional cfg.mdns 5353 ++ optional (cfg.udpPort != null) cfg.udpPort;
    })
    (mkIf cfg.addToNixSettings { nix.settings = nixSettings.settings; })
  ]);
}
