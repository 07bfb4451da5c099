# The tray app: nixpkgs' Electron around the daemon package's built main process (dist/electron/main.js),
# so Electron's own download is never needed.
{
  lib,
  runCommand,
  makeWrapper,
  electron,
  peernix,
}:
runCommand "peernix-app-${peernix.version}"
  {
    nativeBuildInputs = [ makeWrapper ];
    meta = {
      description = "LAN peer-to-peer Nix binary cache (tray app)";
      license = lib.licenses.mit;
      mainProgram = "peernix-app";
      platforms = lib.intersectLists electron.meta.platforms peernix.meta.platforms;
    }
    // lib.optionalAttrs (peernix.meta ? homepage) { inherit (peernix.meta) homepage; };
  }
  ''
    makeWrapper ${electron}/bin/electron $out/bin/peernix-app \
      --add-flags ${peernix}/lib/peernix/dist/electron/main.js
    mkdir -p $out/share/applications $out/share/icons/hicolor/1024x1024/apps
    ln -s ${peernix}/lib/peernix/assets/icon-1024.png $out/share/icons/hicolor/1024x1024/apps/peernix.png
    cat > $out/share/applications/peernix.desktop <<DESKTOP
    [Desktop Entry]
    Type=Application
    Name=Peernix
    Comment=LAN peer-to-peer Nix binary cache
    Exec=$out/bin/peernix-app
    Icon=peernix
    Categories=Network;
    StartupWMClass=Peernix
    DESKTOP
  ''
