import type { StatusView } from '../../src/api.ts';
import { byId } from '../dom.ts';

export function renderConfig(status: StatusView | null): void {
  byId('nixconf').textContent = status?.nixConf.trimEnd() ?? '';
  byId('public-key').textContent = status?.publicKey ?? '';
  byId<HTMLButtonElement>('copy-nixconf').disabled = !status?.nixConf;
}
