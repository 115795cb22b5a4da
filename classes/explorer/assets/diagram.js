/* The model drawn with all its weights, layer by layer (the paper's Fig. 1j),
 * from the folded weights the live model uses (engine.js layouts). */
(function (root) {
  "use strict";

  /* Red for positive, blue for negative, white for zero; value in -1..1. */
  function diverging(value) {
    const v = Math.max(-1, Math.min(1, value));
    return v >= 0 ? [255, Math.round(255 * (1 - v)), Math.round(255 * (1 - v))]
      : [Math.round(255 * (1 + v)), Math.round(255 * (1 + v)), 255];
  }

  function maxAbs(values, start, length) {
    let largest = 0;
    for (let i = start; i < start + length; i++) largest = Math.max(largest, Math.abs(values[i]));
    return largest || 1;
  }

  /* One canvas of tiles: tile(t, x, y) gives the RGB of pixel (x, y) of tile t. */
  function tiles(count, width, height, scale, tile, label) {
    const columns = Math.max(1, Math.min(count, Math.floor(720 / ((width + 1) * scale)))), rows = Math.ceil(count / columns);
    const canvas = document.createElement("canvas");
    canvas.width = columns * (width + 1) * scale;
    canvas.height = rows * (height + 1) * scale;
    canvas.setAttribute("role", "img");
    canvas.setAttribute("aria-label", label);
    const pen = canvas.getContext("2d");
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    for (let t = 0; t < count; t++) {
      const left = (t % columns) * (width + 1) * scale, top = Math.floor(t / columns) * (height + 1) * scale;
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const rgb = tile(t, x, y);
          pen.fillStyle = "rgb(" + rgb[0] + "," + rgb[1] + "," + rgb[2] + ")";
          pen.fillRect(left + x * scale, top + y * scale, scale, scale);
        }
      }
    }
    return canvas;
  }

  function section(container, title, canvas, note) {
    const heading = document.createElement("h3");
    heading.textContent = title;
    container.appendChild(heading);
    container.appendChild(canvas);
    if (note) {
      const text = document.createElement("p");
      text.className = "note";
      text.textContent = note;
      container.appendChild(text);
    }
  }

  function layerZero(container, model) {
    const kernel = model.arrays.kernel0, count = model.counts[0];
    const canvas = tiles(count, 5, 5, 8, function (t, x, y) {
      const scale = maxAbs(kernel, t * 75, 75);
      return [0, 1, 2].map(function (c) { return Math.round(128 + 127 * kernel[t * 75 + c * 25 + y * 5 + x] / scale); });
    }, "Layer 1: " + count + " colour kernels of 5 by 5 pixels");
    section(container, "Layer 1 (code layer0): " + count + " filters, 5x5 RGB kernels", canvas,
      "Each kernel scaled to its largest weight; gray is zero.");
  }

  function separableLayer(container, model, layer) {
    const previous = model.counts[layer - 1], count = model.counts[layer];
    const depthwise = model.arrays["depthwise" + layer], pointwise = model.arrays["pointwise" + layer];
    const depthScale = maxAbs(depthwise, 0, depthwise.length), mixScale = maxAbs(pointwise, 0, pointwise.length);
    const kernels = tiles(previous, 5, 5, 8, function (t, x, y) {
      return diverging(depthwise[t * 25 + y * 5 + x] / depthScale);
    }, "Layer " + (layer + 1) + ": " + previous + " depthwise kernels of 5 by 5");
    section(container, "Layer " + (layer + 1) + " (code layer" + layer + "): " + previous +
      " depthwise 5x5 kernels (stride " + [1, 2, 2, 1, 1][layer] + ")", kernels, null);
    const cell = Math.max(3, Math.min(14, Math.floor(720 / previous)));
    const mixing = tiles(1, previous, count, cell, function (t, x, y) {
      return diverging(pointwise[y * previous + x] / mixScale);
    }, "Pointwise mixing of layer " + (layer + 1) + ": " + count + " filters by " + previous + " channels");
    section(container, "\u2026 then pointwise mixing into " + count + " filters", mixing,
      "One row per filter, one column per input channel; red positive, blue negative.");
  }

  function readout(container, model) {
    const map = model.arrays.readout_map, count = model.counts[4], scale = maxAbs(map, 0, map.length);
    const canvas = tiles(count, 28, 28, 3, function (t, x, y) {
      return diverging(map[t * 784 + y * 28 + x] / scale);
    }, "Readout: " + count + " spatial weight maps of 28 by 28");
    section(container, "Readout: each of the " + count + " last-layer filters' 28x28 spatial weights", canvas,
      "The response is the sum of each map times its filter's activity, plus a bias of " +
      model.arrays.readout_bias[0].toFixed(3) + ".");
  }

  function draw(container, model) {
    if (!container) return;
    layerZero(container, model);
    for (let layer = 1; layer < 5; layer++) separableLayer(container, model, layer);
    readout(container, model);
  }

  root.CompactDiagram = { draw: draw };
})(typeof window !== "undefined" ? window : globalThis);
