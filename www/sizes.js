// Sizes and times as people read them: "512 bytes", "4.2 kB", "23.4 MB"; "about 12 s left".

/** A byte count in the unit that shows it best (a tiny catalog is not "0.0 MB"). */
export function sizeText(bytes) {
  if (bytes < 1000) return `${bytes} bytes`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** Seconds left as words, or '' when unknown. */
export function timeLeftText(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '';
  if (seconds < 1) return 'less than a second left';
  if (seconds < 90) return `about ${Math.round(seconds)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

/** Time left of each download group from its average speed since its first bytes. */
export class DownloadClock {
  constructor(now = () => performance.now()) {
    this.now = now;
    this.started = new Map(); // group -> {at, received}
  }

  /** Seconds left for `group` at `received` of `total` bytes; null until a second of data. */
  secondsLeft(group, received, total) {
    if (!this.started.has(group)) this.started.set(group, { at: this.now(), received });
    const first = this.started.get(group);
    const elapsed = (this.now() - first.at) / 1000;
    const got = received - first.received;
    if (received >= total) return null;
    if (elapsed < 1 || got <= 0) return null;
    return (total - received) / (got / elapsed);
  }
}
