// The box the user draws on the shown photo to search only part of it: pointer drags (mouse,
// touch, pen) draw, move or resize it, keys do the same. The box lives in the photo's own upright
// pixels (the <img>'s naturalWidth x naturalHeight, EXIF orientation applied as the core applies
// it), mapped to and from the displayed (scaled, possibly object-fit: contain) image. No model work
// here: `onCommit(region)` gets {x, y, width, height} in whole pixels when a drag is released (or
// keys stop), `onClear()` when the box is taken away.

/** Fewest pixels a side, as the core requires (src/imaging/crop.rs); the keys never go under it. */
export const MIN_REGION_SIDE = 8;
/** A press moved less than this many CSS pixels both ways is a click, not a box. */
const CLICK_SLOP = 4;
/** How near a corner (CSS pixels) a press grabs it to resize: a finger needs more room. */
const GRAB = { mouse: 12, pen: 16, touch: 24 };
/** Keys move or resize the box by this share of the photo's side. */
const KEY_STEP = 1 / 50;
/** Keys commit once they have stopped for this long, so holding one runs the model once. */
const KEY_SETTLE_MS = 400;

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);

/** The photo's drawn rectangle in client pixels and its scale, from the <img> element. */
function imageFrame(img) {
  const r = img.getBoundingClientRect();
  const nw = img.naturalWidth, nh = img.naturalHeight;
  const cw = img.clientWidth, ch = img.clientHeight;
  let sx = cw / nw, sy = ch / nh, ox = 0, oy = 0;
  if (getComputedStyle(img).objectFit === 'contain') {
    sx = sy = Math.min(sx, sy);
    ox = (cw - nw * sx) / 2;
    oy = (ch - nh * sy) / 2;
  }
  return { left: r.left + img.clientLeft + ox, top: r.top + img.clientTop + oy, sx, sy, nw, nh };
}

/** A box in image pixels ({x0, y0, x1, y1}, any corners) as a whole-pixel region inside the photo. */
function toRegion(b, nw, nh) {
  const x0 = clamp(Math.round(Math.min(b.x0, b.x1)), 0, nw), x1 = clamp(Math.round(Math.max(b.x0, b.x1)), 0, nw);
  const y0 = clamp(Math.round(Math.min(b.y0, b.y1)), 0, nh), y1 = clamp(Math.round(Math.max(b.y0, b.y1)), 0, nh);
  return { x: x0, y: y0, width: x1 - x0, height: y1 - y0 };
}

const boxOf = (r) => ({ x0: r.x, y0: r.y, x1: r.x + r.width, y1: r.y + r.height });

export class CropBox {
  /** area: the focusable element wrapping the <img> and the box element; box: the box element. */
  constructor({ area, img, box, onCommit, onClear }) {
    Object.assign(this, { area, img, box, onCommit, onClear });
    this.region = null; // the committed region, or null: the whole photo
    this.draft = null; // {x0, y0, x1, y1} in image pixels while a drag or keys change it
    this.drag = null;
    this.settle = null;
    area.addEventListener('pointerdown', (e) => this.down(e));
    area.addEventListener('pointermove', (e) => this.move(e));
    area.addEventListener('pointerup', (e) => this.up(e));
    area.addEventListener('pointercancel', () => this.cancel());
    area.addEventListener('keydown', (e) => this.key(e));
    new ResizeObserver(() => this.draw()).observe(img);
    img.addEventListener('load', () => this.draw());
  }

  get usable() { return this.img.naturalWidth > 0 && this.img.naturalHeight > 0; }

  /** Takes the box away without telling anyone (a new photo). */
  reset() {
    clearTimeout(this.settle);
    this.region = this.draft = this.drag = null;
    this.draw();
  }

  /** Puts back the committed region (e.g. after the core refused a new one). */
  revert(region) {
    clearTimeout(this.settle);
    this.region = region;
    this.draft = null;
    this.draw();
  }

  /** Takes the box away and asks for the whole photo. */
  clear() {
    const had = this.region || this.draft;
    this.reset();
    if (had) this.onClear();
  }

  /** The image pixel under a pointer event, clamped to the photo. */
  point(e, f = imageFrame(this.img)) {
    return { x: clamp((e.clientX - f.left) / f.sx, 0, f.nw), y: clamp((e.clientY - f.top) / f.sy, 0, f.nh) };
  }

  down(e) {
    if (!this.usable || (e.pointerType === 'mouse' && e.button !== 0)) return;
    e.preventDefault();
    this.area.focus({ preventScroll: true });
    const f = imageFrame(this.img);
    const p = this.point(e, f);
    const b = this.draft || (this.region && boxOf(this.region));
    const start = { clientX: e.clientX, clientY: e.clientY, before: this.region };
    if (b) {
      const grab = (GRAB[e.pointerType] || GRAB.mouse) / f.sx;
      const xs = [b.x0, b.x1], ys = [b.y0, b.y1];
      for (const i of [0, 1]) for (const j of [0, 1]) {
        if (Math.abs(p.x - xs[i]) <= grab && Math.abs(p.y - ys[j]) <= grab) {
          // Resizing from this corner: the opposite one stays.
          this.drag = { ...start, kind: 'resize', anchor: { x: xs[1 - i], y: ys[1 - j] }, moved: false };
        }
      }
      const inside = p.x > Math.min(...xs) && p.x < Math.max(...xs) && p.y > Math.min(...ys) && p.y < Math.max(...ys);
      if (!this.drag && inside) this.drag = { ...start, kind: 'move', from: p, box: { ...b }, moved: false };
    }
    if (!this.drag) this.drag = { ...start, kind: 'draw', anchor: p, moved: false };
    this.area.setPointerCapture(e.pointerId);
  }

  move(e) {
    const d = this.drag;
    if (!d) return;
    if (Math.abs(e.clientX - d.clientX) >= CLICK_SLOP || Math.abs(e.clientY - d.clientY) >= CLICK_SLOP) d.moved = true;
    if (!d.moved) return;
    const f = imageFrame(this.img);
    const p = this.point(e, f);
    if (d.kind === 'move') {
      const w = d.box.x1 - d.box.x0, h = d.box.y1 - d.box.y0;
      const x0 = clamp(Math.min(d.box.x0, d.box.x1) + p.x - d.from.x, 0, f.nw - Math.abs(w));
      const y0 = clamp(Math.min(d.box.y0, d.box.y1) + p.y - d.from.y, 0, f.nh - Math.abs(h));
      this.draft = { x0, y0, x1: x0 + Math.abs(w), y1: y0 + Math.abs(h) };
    } else {
      this.draft = { x0: d.anchor.x, y0: d.anchor.y, x1: p.x, y1: p.y };
    }
    this.draw();
  }

  up(e) {
    const d = this.drag;
    if (!d) return;
    this.move(e);
    this.drag = null;
    if (!d.moved) { this.revert(d.before); return; } // a click: nothing changes
    this.commit();
  }

  cancel() {
    if (!this.drag) return;
    const before = this.drag.before;
    this.drag = null;
    this.revert(before);
  }

  commit() {
    clearTimeout(this.settle);
    if (!this.draft) return;
    const region = toRegion(this.draft, this.img.naturalWidth, this.img.naturalHeight);
    this.region = region;
    this.draft = null;
    this.draw();
    this.onCommit(region);
  }

  /** Arrows move the box, Shift+arrows move its right or bottom edge, Escape clears it. */
  key(e) {
    if (!this.usable || e.target !== this.area || e.altKey || e.ctrlKey || e.metaKey) return;
    const nw = this.img.naturalWidth, nh = this.img.naturalHeight;
    if (e.key === 'Escape') {
      if (this.region || this.draft) { e.preventDefault(); this.clear(); }
      return;
    }
    const dir = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[e.key];
    if (!dir && e.key !== 'Enter') return;
    e.preventDefault();
    let b = this.draft || (this.region && boxOf(this.region));
    if (!b) {
      // The first key makes a box over the middle half of the photo.
      b = { x0: Math.round(nw / 4), y0: Math.round(nh / 4), x1: Math.round((3 * nw) / 4), y1: Math.round((3 * nh) / 4) };
    } else if (dir) {
      const r = toRegion(b, nw, nh);
      const step = [Math.max(1, Math.round(nw * KEY_STEP)), Math.max(1, Math.round(nh * KEY_STEP))];
      if (e.shiftKey) {
        r.width = clamp(r.width + dir[0] * step[0], Math.min(MIN_REGION_SIDE, nw), nw - r.x);
        r.height = clamp(r.height + dir[1] * step[1], Math.min(MIN_REGION_SIDE, nh), nh - r.y);
      } else {
        r.x = clamp(r.x + dir[0] * step[0], 0, nw - r.width);
        r.y = clamp(r.y + dir[1] * step[1], 0, nh - r.height);
      }
      b = boxOf(r);
    }
    this.draft = b;
    this.draw();
    clearTimeout(this.settle);
    this.settle = setTimeout(() => this.commit(), e.key === 'Enter' ? 0 : KEY_SETTLE_MS);
  }

  /** Places the box element over the displayed photo (CSSOM styles, as the CSP allows). */
  draw() {
    const b = this.draft || (this.region && boxOf(this.region));
    this.area.classList.toggle('has-box', Boolean(b));
    if (!b || !this.usable) { this.box.hidden = true; return; }
    const f = imageFrame(this.img);
    const a = this.area.getBoundingClientRect();
    const left = f.left - a.left - this.area.clientLeft, top = f.top - a.top - this.area.clientTop;
    const s = this.box.style;
    s.left = `${left + Math.min(b.x0, b.x1) * f.sx}px`;
    s.top = `${top + Math.min(b.y0, b.y1) * f.sy}px`;
    s.width = `${Math.abs(b.x1 - b.x0) * f.sx}px`;
    s.height = `${Math.abs(b.y1 - b.y0) * f.sy}px`;
    this.box.hidden = false;
  }
}
