# `peernix serve`'s command line for a module's settings (the secret key is added by each module).
{ lib, cfg }:
[
  "serve"
  "--share-listen"
  cfg.shareListen
  "--listen"
  cfg.listen
]
++ lib.concatMap (peer: [
  "--peer"
  peer
]) cfg.peers
++ lib.optional (!cfg.mdns) "--no-mdns"
++ lib.optionals (cfg.mdnsInterface != null) [
  "--mdns-interface"
  cfg.mdnsInterface
]
++ lib.optional (!cfg.share) "--no-share"
++ lib.optional cfg.trustAllNetworks "--trust-all-networks"
++ cfg.extraArgs
