# nix/package.nix and nix/tray.nix with nixpkgs' builders stood in for by functions that return their
# arguments, as JSON: what each would build from (the source file set, the lock, the flags, the scripts).
{ storeDir ? "/nix/store" }:
let
  lib = import ./lib.nix // {
    importJSON = file: builtins.fromJSON (builtins.readFile file);
    getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
    platforms = {
      linux = [ "x86_64-linux" "aarch64-linux" ];
      darwin = [ "x86_64-darwin" "aarch64-darwin" ];
    };
    licenses.mit = "MIT";
    optionalAttrs = cond: attrs: if cond then attrs else { };
    intersectLists = a: b: builtins.filter (x: builtins.elem x b) a;
    fileset = {
      unions = paths: map toString paths;
      toSource = { root, fileset }: { root = toString root; inherit fileset; outPath = "${storeDir}/source"; };
    };
  };
  drv = name: extra: {
    type = "derivation";
    inherit name;
    outPath = "${storeDir}/${name}";
  } // extra;
  package = import ../../../nix/package.nix {
    inherit lib;
    buildNpmPackage = attrs: attrs;
    importNpmLock = {
      __functor = _: args: args;
      npmConfigHook = "importNpmLock.npmConfigHook";
    };
    nodejs_24 = drv "nodejs-24" { meta.mainProgram = "node"; };
    nodejs_22 = drv "nodejs-22" { meta.mainProgram = "node"; };
    makeWrapper = drv "make-wrapper" { };
  };
  tray = import ../../../nix/tray.nix {
    inherit lib;
    runCommand = name: attrs: script: { inherit name attrs script; };
    makeWrapper = drv "make-wrapper" { };
    electron = drv "electron" { meta.platforms = lib.platforms.linux; };
    peernix = drv "peernix" { inherit (package) version; meta.platforms = package.meta.platforms; };
  };
in
{
  package = removeAttrs package [ "npmDeps" "src" ] // {
    src = { inherit (package.src) root fileset; };
    lockUrls = builtins.attrValues (builtins.mapAttrs (_: m: m.resolved or null) package.npmDeps.packageLock.packages);
    npmRoot = toString package.npmDeps.npmRoot.root;
    packageName = package.npmDeps.package.name;
  };
  tray = {
    inherit (tray) name script;
    inherit (tray.attrs) meta;
  };
}
