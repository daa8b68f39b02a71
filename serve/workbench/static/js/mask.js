// The visible-region mask over the prepared print, in canvas pixels: brush/eraser strokes with
// undo/redo, all/none. The bitmap drawn here is the bitmap sent with the search (as a PNG).

import { inkDark, recolour } from "./pixels.js";

const VISIBLE = [40, 200, 90, 80];
const HIDDEN = [20, 20, 30, 150];
const HISTORY = 50;

export class MaskEditor {
  constructor(printCanvas, maskCanvas, { onMove, onChange }) {
    this.printCanvas = printCanvas;
    this.maskCanvas = maskCanvas;
    this.onMove = onMove;
    this.onChange = onChange;
    this.tool = "brush";
    this.size = 6;
    this.undoStack = [];
    this.redoStack = [];
    this.stroke = null;
    this.width = 0;
    this.height = 0;
    this.bits = new Uint8Array(0);
    maskCanvas.addEventListener("pointerdown", (e) => this.down(e));
    maskCanvas.addEventListener("pointermove", (e) => this.move(e));
    maskCanvas.addEventListener("pointerup", (e) => this.up(e));
  }

  // Canvas pixels; on screen the layers fill their panel, up to `maxDisplayWidth` px.
  setCanvas(width, height, maxDisplayWidth) {
    if (width === this.width && height === this.height) return;
    this.width = width;
    this.height = height;
    this.printCanvas.parentElement.style.maxWidth = `${maxDisplayWidth}px`;
    for (const c of [this.printCanvas, this.maskCanvas]) {
      c.width = width;
      c.height = height;
    }
    this.bits = new Uint8Array(width * height).fill(1);
    this.undoStack = [];
    this.redoStack = [];
    this.render();
  }

  // The prepared print (255 = ink) drawn as an examiner reads it: dark ink on light.
  setPrint(image) { recolour(this.printCanvas, image, inkDark); }

  visibleCount() { return this.bits.reduce((a, b) => a + b, 0); }

  snapshot() {
    this.undoStack.push(this.bits.slice());
    if (this.undoStack.length > HISTORY) this.undoStack.shift();
    this.redoStack = [];
  }

  fill(value) { this.snapshot(); this.bits.fill(value); this.changed(); }

  // A proposed region (an image, bright = visible, the canvas's size) replaces the bitmap.
  load(image) {
    const scratch = document.createElement("canvas");
    scratch.width = this.width;
    scratch.height = this.height;
    const ctx = scratch.getContext("2d");
    ctx.drawImage(image, 0, 0, this.width, this.height);
    const data = ctx.getImageData(0, 0, this.width, this.height).data;
    this.snapshot();
    for (let i = 0; i < this.bits.length; i++) this.bits[i] = data[4 * i] > 127 ? 1 : 0;
    this.changed();
  }

  // The bitmap turned 180° about the canvas centre (a centred print turned by 180°).
  turnHalf() { this.snapshot(); this.bits.reverse(); this.changed(); }

  undo() { this.swap(this.undoStack, this.redoStack); }
  redo() { this.swap(this.redoStack, this.undoStack); }
  swap(from, to) {
    if (!from.length) return;
    to.push(this.bits.slice());
    this.bits = from.pop();
    this.changed();
  }

  changed() { this.render(); this.onChange(); }

  render() {
    if (!this.width) return;
    const ctx = this.maskCanvas.getContext("2d");
    const data = ctx.createImageData(this.width, this.height);
    for (let i = 0; i < this.bits.length; i++) data.data.set(this.bits[i] ? VISIBLE : HIDDEN, i * 4);
    ctx.putImageData(data, 0, 0);
  }

  point(e) {
    const rect = this.maskCanvas.getBoundingClientRect();
    return { x: (e.clientX - rect.left) * this.width / rect.width,
             y: (e.clientY - rect.top) * this.height / rect.height };
  }

  dab(p, value) {
    const r = this.size / 2;
    const x0 = Math.max(0, Math.floor(p.x - r)), x1 = Math.min(this.width - 1, Math.ceil(p.x + r));
    const y0 = Math.max(0, Math.floor(p.y - r)), y1 = Math.min(this.height - 1, Math.ceil(p.y + r));
    for (let y = y0; y <= y1; y++) {
      for (let x = x0; x <= x1; x++) {
        if ((x + 0.5 - p.x) ** 2 + (y + 0.5 - p.y) ** 2 <= r * r) this.bits[y * this.width + x] = value;
      }
    }
  }

  line(a, b, value) {
    const steps = Math.max(1, Math.ceil(Math.hypot(b.x - a.x, b.y - a.y) / Math.max(1, this.size / 4)));
    for (let i = 0; i <= steps; i++) {
      this.dab({ x: a.x + (b.x - a.x) * i / steps, y: a.y + (b.y - a.y) * i / steps }, value);
    }
  }

  down(e) {
    if (!this.width) return;
    this.maskCanvas.setPointerCapture(e.pointerId);
    const p = this.point(e);
    if (this.tool === "move") { this.stroke = { start: p }; return; }
    this.snapshot();
    this.stroke = { last: p, value: this.tool === "brush" ? 1 : 0 };
    this.dab(p, this.stroke.value);
    this.render();
  }

  move(e) {
    if (!this.stroke || this.stroke.start) return;
    const p = this.point(e);
    this.line(this.stroke.last, p, this.stroke.value);
    this.stroke.last = p;
    this.render();
  }

  up(e) {
    if (!this.stroke) return;
    if (this.stroke.start) {
      const p = this.point(e);
      const dx = p.x - this.stroke.start.x, dy = p.y - this.stroke.start.y;
      if (Math.hypot(dx, dy) >= 1) this.onMove(dx, dy);
    } else {
      this.onChange();
    }
    this.stroke = null;
  }

  // The mask as a grey PNG (255 = visible), exactly this bitmap.
  png() {
    const canvas = document.createElement("canvas");
    canvas.width = this.width;
    canvas.height = this.height;
    const ctx = canvas.getContext("2d");
    const data = ctx.createImageData(this.width, this.height);
    for (let i = 0; i < this.bits.length; i++) {
      const v = this.bits[i] ? 255 : 0;
      data.data.set([v, v, v, 255], i * 4);
    }
    ctx.putImageData(data, 0, 0);
    return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  }
}
