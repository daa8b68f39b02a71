// The original image, zoomable (wheel, +/−) and pannable (drag); the ruler tool takes two
// clicks in image pixels, the crop tool a dragged rectangle in image pixels.

export class Viewer {
  constructor(canvas, { onRuler, onCrop }) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.image = null;
    this.scale = 1;
    this.offset = { x: 0, y: 0 };
    this.tool = "pan";
    this.ruler = [];
    this.crop = null;
    this.dragging = null;
    this.onRuler = onRuler;
    this.onCrop = onCrop;
    canvas.addEventListener("wheel", (e) => this.wheel(e), { passive: false });
    canvas.addEventListener("pointerdown", (e) => this.down(e));
    canvas.addEventListener("pointermove", (e) => this.move(e));
    canvas.addEventListener("pointerup", (e) => this.up(e));
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    if (rect.width && (this.canvas.width !== Math.round(rect.width))) {
      this.canvas.width = Math.round(rect.width);
      this.canvas.height = Math.round(rect.height);
      this.fit();
    }
  }

  show(image) {
    this.image = image;
    this.ruler = [];
    this.crop = null;
    this.fit();
  }

  fit() {
    if (!this.image) return this.draw();
    const { width, height } = this.canvas;
    this.scale = Math.min(width / this.image.width, height / this.image.height) * 0.95;
    this.offset = { x: (width - this.image.width * this.scale) / 2,
                    y: (height - this.image.height * this.scale) / 2 };
    this.draw();
  }

  zoom(factor, cx = this.canvas.width / 2, cy = this.canvas.height / 2) {
    const p = this.toImage(cx, cy);
    this.scale = Math.min(64, Math.max(0.01, this.scale * factor));
    this.offset = { x: cx - p.x * this.scale, y: cy - p.y * this.scale };
    this.draw();
  }

  // canvas pixels <-> image pixels
  toImage(cx, cy) { return { x: (cx - this.offset.x) / this.scale, y: (cy - this.offset.y) / this.scale }; }
  toCanvas(x, y) { return { x: x * this.scale + this.offset.x, y: y * this.scale + this.offset.y }; }

  // client (page) coordinates of an image pixel: what a click there would hit
  imageToClient(x, y) {
    const rect = this.canvas.getBoundingClientRect();
    const c = this.toCanvas(x, y);
    return { x: rect.left + c.x * rect.width / this.canvas.width,
             y: rect.top + c.y * rect.height / this.canvas.height };
  }

  eventPoint(e) {
    const rect = this.canvas.getBoundingClientRect();
    return { x: (e.clientX - rect.left) * this.canvas.width / rect.width,
             y: (e.clientY - rect.top) * this.canvas.height / rect.height };
  }

  clampToImage(p) {
    return { x: Math.round(Math.min(this.image.width, Math.max(0, p.x))),
             y: Math.round(Math.min(this.image.height, Math.max(0, p.y))) };
  }

  wheel(e) {
    if (!this.image) return;
    e.preventDefault();
    const p = this.eventPoint(e);
    this.zoom(e.deltaY < 0 ? 1.2 : 1 / 1.2, p.x, p.y);
  }

  down(e) {
    if (!this.image) return;
    const p = this.eventPoint(e);
    this.canvas.setPointerCapture(e.pointerId);
    if (this.tool === "ruler") {
      const q = this.toImage(p.x, p.y);
      this.ruler = this.ruler.length >= 2 ? [q] : [...this.ruler, q];
      this.draw();
      if (this.ruler.length === 2) this.onRuler(Math.hypot(this.ruler[1].x - this.ruler[0].x,
                                                           this.ruler[1].y - this.ruler[0].y));
    } else if (this.tool === "crop") {
      this.dragging = { start: this.clampToImage(this.toImage(p.x, p.y)) };
    } else {
      this.dragging = { pan: p, offset: { ...this.offset } };
    }
  }

  move(e) {
    if (!this.dragging) return;
    const p = this.eventPoint(e);
    if (this.dragging.pan) {
      this.offset = { x: this.dragging.offset.x + p.x - this.dragging.pan.x,
                      y: this.dragging.offset.y + p.y - this.dragging.pan.y };
    } else {
      const end = this.clampToImage(this.toImage(p.x, p.y));
      const s = this.dragging.start;
      this.crop = [Math.min(s.x, end.x), Math.min(s.y, end.y), Math.max(s.x, end.x), Math.max(s.y, end.y)];
    }
    this.draw();
  }

  up() {
    if (this.dragging && this.dragging.start && this.crop) {
      const [l, t, r, b] = this.crop;
      if (r - l >= 4 && b - t >= 4) this.onCrop(this.crop); else this.crop = null;
    }
    this.dragging = null;
    this.draw();
  }

  draw() {
    const { ctx, canvas } = this;
    ctx.fillStyle = "#333";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!this.image) return;
    ctx.imageSmoothingEnabled = this.scale < 1;
    ctx.drawImage(this.image, this.offset.x, this.offset.y,
                  this.image.width * this.scale, this.image.height * this.scale);
    if (this.crop) {
      const a = this.toCanvas(this.crop[0], this.crop[1]);
      const b = this.toCanvas(this.crop[2], this.crop[3]);
      ctx.strokeStyle = "#ffb300";
      ctx.lineWidth = 2;
      ctx.setLineDash([6, 4]);
      ctx.strokeRect(a.x, a.y, b.x - a.x, b.y - a.y);
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = ctx.fillStyle = "#00e5ff";
    ctx.lineWidth = 2;
    const points = this.ruler.map((q) => this.toCanvas(q.x, q.y));
    points.forEach((c) => { ctx.beginPath(); ctx.arc(c.x, c.y, 4, 0, 2 * Math.PI); ctx.fill(); });
    if (points.length === 2) {
      ctx.beginPath(); ctx.moveTo(points[0].x, points[0].y); ctx.lineTo(points[1].x, points[1].y); ctx.stroke();
    }
  }
}
