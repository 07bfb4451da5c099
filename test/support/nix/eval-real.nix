# The NixOS and nix-darwin modules evaluated by the real module system: nixpkgs' own lib
# (lib.evalModules, its types, mkPackageOption) and, for nix-darwin, its real launchd module, which
# turns a daemon's `command` into ProgramArguments and a plist. Stand-ins only where nixpkgs' pkgs/ and
# nixos/ trees would be (not on our machines): the packages are names, and the few NixOS options the
# module sets are declared here with the real types NixOS gives them (attrs of units, lists of ports,
# freeform nix.settings) — where those differ from nixos/ is where this check is blind. The home-manager
# module gets the real lib too, but stand-in declarations for home-manager's systemd and launchd options
# (its own modules for them need pkgs/: formats.ini, writeTextFile, sd-switch).
# Usage (Nix ≥ 2.18, e.g. Debian sid's 2.34): nix-instantiate --eval --strict --json eval-real.nix
#   --arg lib <nixpkgs-lib>/lib --arg nixDarwin <nix-darwin> --arg module ./x.nix --arg kind '"nixos"' --arg settings '{…}'
{
  lib,
  nixDarwin,
  module,
  kind,
  settings,
}:
let
  lib' = import lib;
  inherit (lib') mkOption types;
  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/${name}";
  };
  pkgs = {
    peernix = drv "peernix";
    peernix-app = drv "peernix-app";
    stdenv.hostPlatform = {
      isLinux = kind != "darwin" && kind != "home-darwin";
      isDarwin = kind == "darwin" || kind == "home-darwin";
    };
    writeScript = name: text: drv name;
  };
  # NixOS's utils.escapeSystemdExecArgs (nixos/lib/utils.nix), which is in the tree we lack.
  utils.escapeSystemdExecArgs = args: lib'.concatMapStringsSep " " (a: lib'.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON a)) args;
  freeform = mkOption {
    type = types.submodule { freeformType = types.attrsOf types.anything; };
    default = { };
  };
  common = {
    options.assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    options.environment = freeform;
    options.nix.settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf (types.oneOf [ types.bool types.int types.str (types.listOf types.str) ]);
      };
      default = { };
    };
  };
  nixos = {
    options.systemd.services = mkOption {
      type = types.attrsOf (
        types.submodule {
          freeformType = types.attrsOf types.anything;
          options = lib'.genAttrs [ "wants" "wantedBy" "after" "requires" ] (_: mkOption { type = types.listOf types.str; default = [ ]; }) // {
            environment = mkOption { type = types.attrsOf types.str; default = { }; };
            serviceConfig = mkOption { type = types.attrsOf types.anything; default = { }; };
          };
        }
      );
      default = { };
    };
    options.users = freeform;
    options.networking.firewall = {
      allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      allowedUDPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
    };
  };
  darwin = {
    imports = [ (nixDarwin + "/modules/launchd") ];
    options.system = freeform;
  };
  # home-manager's options the tray module sets (its systemd and launchd modules need pkgs/).
  home = {
    options.home.packages = mkOption { type = types.listOf types.package; default = [ ]; };
    options.systemd.user.services = mkOption { type = types.attrsOf (types.attrsOf (types.attrsOf types.anything)); default = { }; };
    options.launchd.agents = mkOption { type = types.attrsOf (types.attrsOf types.anything); default = { }; };
  };
  evaluated = lib'.evalModules {
    modules = [
      module
      common
      (if kind == "darwin" then darwin else if kind == "nixos" then nixos else home)
      settings
      { _module.args = { inherit pkgs utils; }; }
    ];
  };
  c = evaluated.config;
in
{
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);
  nixSettings = c.nix.settings;
}
// (
  if kind == "home" || kind == "home-darwin" then
    {
      package = c.services.peernix-app.package.name;
      inherit (c.home) packages;
      services = c.systemd.user.services;
      agents = c.launchd.agents;
    }
  else if kind == "darwin" then
    {
      package = c.services.peernix.package.name;
      daemon = { inherit (c.launchd.daemons.peernix) command serviceConfig; };
      plist = c.environment.launchDaemons."org.nixos.peernix.plist".text;
    }
  else
    {
      package = c.services.peernix.package.name;
      service = c.systemd.services.peernix;
      firewall = c.networking.firewall;
    }
)
