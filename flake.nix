{
  description = "Peernix: a LAN peer-to-peer Nix binary cache";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      lib = nixpkgs.lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
      # The tray app only where nixpkgs has an Electron for the platform.
      hasElectron = pkgs: lib.meta.availableOn pkgs.stdenv.hostPlatform pkgs.electron;
      packagesFor =
        pkgs:
        let
          peernix = pkgs.callPackage ./nix/package.nix { };
        in
        {
          default = peernix;
          inherit peernix;
        }
        // lib.optionalAttrs (hasElectron pkgs) {
          peernix-app = pkgs.callPackage ./nix/tray.nix { inherit peernix; };
        };
      # The modules default to this flake's package, built with the configuration's own nixpkgs.
      withPackage =
        module: setPackage:
        { pkgs, ... }:
        {
          imports = [ module ];
          config = setPackage (packagesFor pkgs);
        };
    in
    {
      packages = forAllSystems packagesFor;

      apps = forAllSystems (
        pkgs:
        let
          p = self.packages.${pkgs.stdenv.hostPlatform.system};
        in
        {
          default = {
            type = "app";
            program = "${p.default}/bin/peernix";
            meta.description = "Peernix, the headless daemon and its CLI (peernix serve, status, doctor, …)";
          };
        }
        // lib.optionalAttrs (p ? peernix-app) {
          peernix-app = {
            type = "app";
            program = "${p.peernix-app}/bin/peernix-app";
            meta.description = "Peernix, the tray app";
          };
        }
      );

      overlays.default = final: prev: {
        peernix = final.callPackage ./nix/package.nix { };
        peernix-app = final.callPackage ./nix/tray.nix { peernix = final.peernix; };
      };

      nixosModules.default = withPackage ./nix/nixos-module.nix (p: {
        services.peernix.package = lib.mkDefault p.default;
      });
      darwinModules.default = withPackage ./nix/darwin-module.nix (p: {
        services.peernix.package = lib.mkDefault p.default;
      });
      homeModules.default = withPackage ./nix/home-manager-module.nix (p: {
        services.peernix-app.package = lib.mkDefault p.peernix-app;
      });
      # The name home-manager used before `homeModules`.
      homeManagerModules = self.homeModules;

      checks = forAllSystems (
        pkgs:
        { inherit (packagesFor pkgs) default; }
        # Two NixOS VMs substituting from each other through Peernix (needs KVM to run).
        // lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux {
          vm-substitution = pkgs.testers.runNixOSTest (import ./nix/vm-test.nix { nixosModule = self.nixosModules.default; });
        }
      );
    };
}
