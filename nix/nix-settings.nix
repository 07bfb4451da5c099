# What addToNixSettings adds to the system's Nix configuration, and the checks both modules make.
{ lib, cfg }:
{
  settings = {
    substituters = [ "http://${cfg.listen}" ];
    # Never [ null ]: without a key the assertion below says what to do, not a type error about null.
    trusted-public-keys = lib.optional (cfg.publicKey != null) cfg.publicKey;
  };
  assertions = [
    {
      assertion = !cfg.addToNixSettings || cfg.publicKey != null;
      message = "services.peernix.addToNixSettings needs services.peernix.publicKey: start Peernix once and set it to what `peernix nix-conf` prints after extra-trusted-public-keys.";
    }
    {
      assertion = cfg.secretKeyFile == null || builtins.substring 0 1 cfg.secretKeyFile == "/";
      message = "services.peernix.secretKeyFile must be an absolute path, got \"${toString cfg.secretKeyFile}\".";
    }
  ];
}
