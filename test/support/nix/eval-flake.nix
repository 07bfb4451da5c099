# The flake's outputs against the stand-in nixpkgs, as JSON: which packages each system gets, the apps,
# the overlay, and what the flake's modules import and default their package to.
{
  flake,
  electronOn,
  realLib ? null,
}:
let
  nixpkgs = import ./nixpkgs.nix { inherit electronOn realLib; };
  f = import flake;
  self = f.outputs { inherit self nixpkgs; };
  names = builtins.mapAttrs (_: builtins.mapAttrs (_: d: d.name));
  final = nixpkgs.legacyPackages.x86_64-linux // self.overlays.default final { };
  wrapper =
    module: system:
    let
      m = module { pkgs = nixpkgs.legacyPackages.${system}; };
    in
    {
      imports = map (p: baseNameOf (toString p)) m.imports;
      config = m.config;
    };
in
{
  inputs = builtins.mapAttrs (_: i: i.url) f.inputs;
  description = f.description;
  packages = names self.packages;
  apps = self.apps;
  overlay = builtins.mapAttrs (_: d: d.name) (self.overlays.default final { });
  nixos = wrapper self.nixosModules.default "x86_64-linux";
  darwin = wrapper self.darwinModules.default "aarch64-darwin";
  homeManager = wrapper self.homeModules.default "x86_64-linux";
  homeManagerIsHomeModules = self.homeManagerModules == self.homeModules;
  checks = names self.checks;
  # The VM test as runNixOSTest was given it: each node's own settings (its imports by name).
  vmTest =
    let
      t = self.checks.x86_64-linux.vm-substitution.test;
    in
    {
      inherit (t) name testScript;
      nodes = builtins.mapAttrs (
        _: n:
        removeAttrs n [ "imports" ]
        // {
          imports = map (m: builtins.typeOf m) n.imports;
        }
      ) t.nodes;
    };
}
