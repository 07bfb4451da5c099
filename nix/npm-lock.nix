# package-lock.json with a registry URL for every fetched package. The lock is written without them
# (npm's omit-lockfile-registry-resolved), and importNpmLock fetches only what has a "resolved" URL;
# the integrity hash already in the lock pins each tarball, so no hash is kept by hand.
lock:
let
  registry = "https://registry.npmjs.org";
  last = list: builtins.elemAt list (builtins.length list - 1);
  # "node_modules/a/node_modules/@s/b" is @s/b; an alias ("x": "npm:y@1") names the real package in "name".
  packageName = key: module: module.name or (last (builtins.split "node_modules/" key));
  tarball = name: version: "${registry}/${name}/-/${last (builtins.split "/" name)}-${version}.tgz";
  withUrl =
    key: module:
    if key == "" || module ? resolved || (module.link or false) || !(module ? integrity) then
      module
    else
      module // { resolved = tarball (packageName key module) module.version; };
in
lock // { packages = builtins.mapAttrs withUrl lock.packages; }
