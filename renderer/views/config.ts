import type { StatusView } from '../../src/base/api.ts';
import { byId, h, replaceChildren } from '../dom.ts';

export function renderConfig(status: StatusView | null): void {
  byId('nixconf').textContent = status?.nixConf.trimEnd() ?? '';
  byId('public-key').textContent = status?.publicKey ?? '';
  byId<HTMLButtonElement>('copy-nixconf').disabled = !status?.nixConf;
  const addrs = byId('share-addresses');
  const list = status?.sharing ? (status.shareAddresses ?? (status.shareUrl ? [status.shareUrl] : [])) : [];
  replaceChildren(
    addrs,
    list.length
      ? list.map((a) => h('code', { class: 'v addr', testid: 'share-address', text: a }))
      : [h('span', { class: 'muted small', text: status?.sharing ? 'no LAN address found' : 'not sharing' })],
  );
}
