# The headless daemon (`peernix`), built from the npm lock with nixpkgs' importNpmLock and run on
# nixpkgs' Node. The build downloads nothing itself: every tarball is a fixed-output fetch pinned by the
# lock's integrity hash, and no package's install script runs.
{
  lib,
  buildNpmPackage,
  importNpmLock,
  # Node 24 where nixpkgs has it; Node 22 (from 22.18, which runs the .ts build script) elsewhere.
  nodejs_24 ? null,
  nodejs_22,
  makeWrapper,
}:
let
  nodejs = if nodejs_24 != null then nodejs_24 else nodejs_22;
  package = lib.importJSON ../package.json;
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../package.json
      ../package-lock.json
      ../tsconfig.json
      ../scripts/build.ts
      ../src
      ../renderer
      ../electron
      ../assets
    ];
  };
in
buildNpmPackage {
  pname = "peernix";
  inherit (package) version;
  inherit src;
  inherit nodejs;

  npmDeps = importNpmLock {
    npmRoot = src;
    inherit package;
    packageLock = import ./npm-lock.nix (lib.importJSON ../package-lock.json);
  };
  npmConfigHook = importNpmLock.npmConfigHook;
  # The `node` package's install script would download a Node binary and Electron's its own binary:
  # neither runs. The daemon runs on nixpkgs' nodejs, the tray app on nixpkgs' electron.
  npmFlags = [ "--ignore-scripts" ];
  env.ELECTRON_SKIP_BINARY_DOWNLOAD = "1";

  nativeBuildInputs = [ makeWrapper ];

  # `npm run build` puts node_modules/.bin first on the PATH, where the `node` package's unfinished
  # binary would shadow nixpkgs' node.
  preBuild = ''
    rm -f node_modules/.bin/node
  '';

  # nixpkgs' npm config hook has come in two versions: one leaves its patched package.json (and
  # lock) in place, the other restores the originals at the end of the config phase, after which
  # `npm prune` finds tarballs it can't fetch (ENOTCACHED) and .package.json.orig is gone. Putting
  # the hook's files back first works with either.
  installPhase = ''
    runHook preInstall
    cp --no-preserve=mode $npmDeps/package.json package.json
    cp --no-preserve=mode $npmDeps/package-lock.json package-lock.json
    # Leaves the runtime dependencies only (the `node` package is a devDependency: the build's toolchain).
    npm prune --omit=dev --no-save $npmFlags
    # npm's record of the install names every tarball's store path.
    rm -f node_modules/.package-lock.json
    dir=$out/lib/peernix
    mkdir -p $dir $out/bin
    cp -r dist node_modules assets $dir/
    # The hook's patched package.json points at store paths; the source's keeps them out of the closure.
    cp ${src}/package.json $dir/package.json
    makeWrapper ${lib.getExe nodejs} $out/bin/peernix \
      --add-flags $dir/dist/cli/peernix.js \
      --set-default MALLOC_MMAP_THRESHOLD_ 131072
    runHook postInstall
  '';

  passthru = { inherit nodejs; };

  meta = {
    description = "LAN peer-to-peer Nix binary cache (headless daemon)";
    license = lib.licenses.mit;
    mainProgram = "peernix";
    platforms = lib.platforms.linux ++ lib.platforms.darwin;
  }
  # One place for the project's address, read by npm and Nix alike.
  // lib.optionalAttrs (package ? homepage) { inherit (package) homepage; };
}
