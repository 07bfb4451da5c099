# A stand-in for the nixpkgs flake input: the library functions flake.nix uses, and per system a
# callPackage that records what it was asked to build, and an Electron available where the test says.
{
  electronOn,
  # The real nixpkgs lib/ (a modern Nix evaluates it); null: the stand-in.
  realLib ? null,
}:
let
  standIn = import ./lib.nix // {
    genAttrs =
      names: f:
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = f n;
        }) names
      );
    optionalAttrs = cond: attrs: if cond then attrs else { };
    meta.availableOn = platform: pkg: builtins.elem platform.system pkg.meta.platforms;
    intersectLists = a: b: builtins.filter (x: builtins.elem x b) a;
  };
  lib = if realLib == null then standIn else import realLib;
  pkgsFor = system: {
    stdenv.hostPlatform = {
      inherit system;
      isLinux = builtins.match ".*-linux" system != null;
    };
    # runNixOSTest stands in as what it was given (the real one needs nixpkgs' nixos/ tree).
    testers.runNixOSTest = test: {
      type = "derivation";
      name = "vm-test-run-${test.name}";
      inherit test;
    };
    electron = {
      type = "derivation";
      meta.platforms = electronOn;
    };
    callPackage = file: args: {
      type = "derivation";
      name = baseNameOf (toString file);
      outPath = "/nix/store/${system}-${baseNameOf (toString file)}";
      args = builtins.attrNames args;
    };
  };
in
{
  inherit lib;
  legacyPackages = lib.genAttrs [
    "x86_64-linux"
    "aarch64-linux"
    "x86_64-darwin"
    "aarch64-darwin"
    "riscv64-linux"
  ] pkgsFor;
}
