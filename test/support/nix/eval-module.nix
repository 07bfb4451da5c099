# Evaluates one module the way the real module system would for these simple cases: the option
# declarations, the sample settings checked against them (unknown names and ill-typed values refused,
# defaults filled in), and the configuration the module produces with mkIf/mkMerge/mkDefault pushed down.
# Usage: nix-instantiate --eval --strict --json eval-module.nix --arg module ./x.nix --arg settings '{…}' …
{
  module,
  settings,
  # Where the stand-in packages "are": the tests put real executables there for systemd-analyze.
  storeDir ? "/nix/store",
  isDarwin ? false,
}:
let
  lib = import ./lib.nix;
  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "${storeDir}/${name}";
  };
  pkgs = {
    peernix = drv "peernix";
    peernix-app = drv "peernix-app";
    stdenv.hostPlatform = {
      isLinux = !isDarwin;
      inherit isDarwin;
    };
  };
  # NixOS's utils.escapeSystemdExecArgs: each word JSON-quoted, then % and $ doubled.
  utils.escapeSystemdExecArgs =
    args: builtins.concatStringsSep " " (map (a: builtins.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON a)) args);

  isOption = v: builtins.isAttrs v && (v._type or null) == "option";
  result = import module {
    inherit lib pkgs utils config;
  };

  # The settings against the declarations: a value must pass its type's check; unset options take defaults.
  fill =
    prefix: decls: set:
    let
      unknown = builtins.filter (n: !(decls ? ${n})) (builtins.attrNames set);
    in
    if unknown != [ ] then
      throw "The option `${prefix}${builtins.head unknown}' does not exist."
    else
      builtins.mapAttrs (
        name: decl:
        if isOption decl then
          if set ? ${name} then
            (
              if decl.type.check set.${name} then
                set.${name}
              else
                throw "The option `${prefix}${name}' is not of type `${decl.type.name}'."
            )
          else if decl ? default then
            decl.default
          else
            throw "The option `${prefix}${name}' is used but not defined."
        else
          fill "${prefix}${name}." decl (set.${name} or { })
      ) decls;
  config = fill "" result.options settings;

  absent = {
    _type = "absent";
  };
  isAbsent = v: builtins.isAttrs v && (v._type or null) == "absent";
  merge2 =
    a: b:
    if isAbsent a then
      b
    else if isAbsent b then
      a
    else if builtins.isAttrs a && builtins.isAttrs b && !(a ? outPath) && !(b ? outPath) then
      builtins.zipAttrsWith (_: vs: builtins.foldl' merge2 absent vs) [
        a
        b
      ]
    else if builtins.isList a && builtins.isList b then
      a ++ b
    else if a == b then
      a
    else
      throw "conflicting definitions: ${builtins.toJSON a} and ${builtins.toJSON b}";
  resolve =
    v:
    if !(builtins.isAttrs v) || v ? outPath then
      v
    else if (v._type or null) == "if" then
      (if v.condition then resolve v.content else absent)
    else if (v._type or null) == "merge" then
      builtins.foldl' merge2 absent (map resolve v.contents)
    else if (v._type or null) == "override" then
      resolve v.content
    else
      let
        kept = builtins.filter (n: !(isAbsent (resolve v.${n}))) (builtins.attrNames v);
      in
      builtins.listToAttrs (
        map (n: {
          name = n;
          value = resolve v.${n};
        }) kept
      );
  produced = resolve result.config;
  # JSON of a declaration: its type's name, default (or defaultText), description.
  describe =
    decls:
    builtins.mapAttrs (
      _: d:
      if isOption d then
        {
          type = d.type.name;
          default = if d ? defaultText then d.defaultText.text else d.default or null;
          description = d.description or null;
        }
      else
        describe d
    ) decls;
in
# Every setting is checked, read by the module or not, as the module system does.
builtins.deepSeq config {
  options = describe result.options;
  config = if isAbsent produced then { } else removeAttrs produced [ "assertions" ];
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) (produced.assertions or [ ]));
}
