// Per-pixel recolouring of grey images (prints are stored 255 = ink; examiners read dark ink).

// Redraw `source` into `canvas`, each pixel's grey value v mapped to colour(v) = [r, g, b, a].
export function recolour(canvas, source, colour) {
  canvas.width = source.width;
  canvas.height = source.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(source, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  for (let i = 0; i < data.data.length; i += 4) data.data.set(colour(data.data[i]), i);
  ctx.putImageData(data, 0, 0);
}

export const inkDark = (v) => [255 - v, 255 - v, 255 - v, 255];
