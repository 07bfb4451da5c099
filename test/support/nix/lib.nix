# A stand-in for the few nixpkgs library functions Peernix's modules use (no nixpkgs on our machines).
# Options carry their type's check, so eval-module.nix can refuse a value the real module system would.
let
  mkType = name: check: {
    _type = "type";
    inherit name check;
  };
  hasPrefix = prefix: s: builtins.substring 0 (builtins.stringLength prefix) s == prefix;
in
rec {
  types = {
    bool = mkType "bool" builtins.isBool;
    str = mkType "str" builtins.isString;
    port = mkType "port" (v: builtins.isInt v && v >= 0 && v <= 65535);
    package = mkType "package" (v: builtins.isAttrs v && (v.type or null) == "derivation");
    nullOr = t: mkType "null or ${t.name}" (v: v == null || t.check v);
    listOf = t: mkType "list of ${t.name}" (v: builtins.isList v && builtins.all t.check v);
    strMatching = re: mkType "string matching the pattern ${re}" (v: builtins.isString v && builtins.match re v != null);
  };

  # nixpkgs' mkPackageOption for the plain case: `pkgs.<name>`, shown as such.
  mkPackageOption =
    pkgs: name: _:
    mkOption {
      type = types.package;
      default = pkgs.${name};
      defaultText = literalExpression "pkgs.${name}";
      description = "The ${name} package to use.";
    };
  escapeShellArgs = args: builtins.concatStringsSep " " (map (a: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] a}'") args);

  mkOption = args: args // { _type = "option"; };
  mkEnableOption = what: mkOption {
    type = types.bool;
    default = false;
    description = "Whether to enable ${what}.";
  };
  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  mkMerge = contents: {
    _type = "merge";
    inherit contents;
  };
  mkDefault = content: {
    _type = "override";
    priority = 1000;
    inherit content;
  };

  optional = cond: x: if cond then [ x ] else [ ];
  optionals = cond: xs: if cond then xs else [ ];
  optionalString = cond: s: if cond then s else "";
  concatMap = builtins.concatMap;
  concatStringsSep = builtins.concatStringsSep;
  inherit hasPrefix;
  removePrefix = prefix: s: if hasPrefix prefix s then builtins.substring (builtins.stringLength prefix) (builtins.stringLength s) s else s;
  toInt =
    s:
    if builtins.match "0|[1-9][0-9]*" s != null then builtins.fromJSON s else throw "toInt: \"${s}\" is not a decimal integer";
}
