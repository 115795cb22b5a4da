/* The compact model in the browser: forward pass, input gradient and the
 * synthesis of SPEC section 7, dependency-free, on float32 typed arrays.
 *
 * Weights come from the build (classes/explorer/weights_export.py) with every
 * BatchNormalization folded into the convolution before it. Images are planar
 * Float32Arrays (3, 112, 112) of recentred pixels (raw minus the RGB means).
 * Layouts: kernel0 (K0, 3, 5, 5); depthwise_i (K_{i-1}, 5, 5); pointwise_i
 * (K_i, K_{i-1}); readout_map (K4, 28, 28). "Same" padding as Keras: a 5x5
 * stride-2 convolution on an even side pads 1 before and 2 after.
 */
(function (root) {
  "use strict";
  const SIDE = 112;
  const PADDED = SIDE + 4;
  const STRIDES = [1, 2, 2, 1, 1];
  const MEANS = [116.222, 109.270, 100.381];

  function decodeFloats(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  function samePadding(size, stride) {
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + 5 - size, 0);
    return { out: out, before: Math.floor(total / 2) };
  }

  /* Valid output range [first, last) of one tap: out*stride + tap - before in [0, size). */
  function tapRange(tap, before, stride, size, out) {
    const offset = tap - before;
    const first = Math.max(0, Math.ceil(-offset / stride));
    const last = Math.min(out, Math.floor((size - 1 - offset) / stride) + 1);
    return [first, last, offset];
  }

  /* Adds w * input(plane) shifted by a tap into output(plane), or the transpose. */
  function tapPass(input, inOffset, output, outOffset, weight, dy, dx, geometry, transpose) {
    const { size, out, stride, before } = geometry;
    const [y0, y1, oy] = tapRange(dy, before, stride, size, out);
    const [x0, x1, ox] = tapRange(dx, before, stride, size, out);
    for (let y = y0; y < y1; y++) {
      const inRow = inOffset + (y * stride + oy) * size + ox;
      const outRow = outOffset + y * out;
      if (transpose) {
        for (let x = x0; x < x1; x++) input[inRow + x * stride] += weight * output[outRow + x];
      } else {
        for (let x = x0; x < x1; x++) output[outRow + x] += weight * input[inRow + x * stride];
      }
    }
  }

  class CompactModel {
    /* spec: {nums_filters: [K0..K4], arrays: {name: base64 float32}} from the build. */
    constructor(spec) {
      this.counts = spec.nums_filters.slice();
      const arrays = {};
      for (const name of Object.keys(spec.arrays)) arrays[name] = decodeFloats(spec.arrays[name]);
      this.arrays = arrays;
      this.geometry = [];
      let size = SIDE;
      for (let layer = 0; layer < 5; layer++) {
        const padding = samePadding(size, STRIDES[layer]);
        this.geometry.push({ size: size, out: padding.out, stride: STRIDES[layer], before: padding.before });
        size = padding.out;
      }
    }

    /* Layer 0: 5x5 convolution of the 3 input planes, bias, ReLU (on a zero-padded copy). */
    layer0(image) {
      const count = this.counts[0], plane = SIDE * SIDE, padded = pad(image, 3);
      const kernel = this.arrays.kernel0, bias = this.arrays.bias0;
      const output = new Float32Array(count * plane);
      for (let k = 0; k < count; k++) {
        output.fill(bias[k], k * plane, (k + 1) * plane);
        for (let c = 0; c < 3; c++) {
          for (let dy = 0; dy < 5; dy++) {
            const taps = kernel.subarray(((k * 3 + c) * 5 + dy) * 5, ((k * 3 + c) * 5 + dy) * 5 + 5);
            rowPass(padded, c * PADDED * PADDED + dy * PADDED, output, k * plane, taps);
          }
        }
      }
      return relu(output);
    }

    /* Layers 1-4: depthwise 5x5 (stride 2, 2, 1, 1), pointwise, bias, ReLU. */
    separable(layer, input) {
      const g = this.geometry[layer], previous = this.counts[layer - 1], count = this.counts[layer];
      const inPlane = g.size * g.size, plane = g.out * g.out;
      const depthwise = this.arrays["depthwise" + layer];
      const mixed = new Float32Array(previous * plane);
      for (let c = 0; c < previous; c++) {
        for (let tap = 0; tap < 25; tap++) {
          tapPass(input, c * inPlane, mixed, c * plane, depthwise[c * 25 + tap], Math.floor(tap / 5), tap % 5, g, false);
        }
      }
      const pointwise = this.arrays["pointwise" + layer], bias = this.arrays["bias" + layer];
      const output = new Float32Array(count * plane);
      for (let k = 0; k < count; k++) output.fill(bias[k], k * plane, (k + 1) * plane);
      mix(mixed, previous, output, count, plane, function (k, c) { return pointwise[k * previous + c]; });
      return { mixed: mixed, output: relu(output) };
    }

    /* Response and every layer's activity to one recentred planar image. */
    forward(image) {
      const activity = [this.layer0(image)], mixed = [null];
      for (let layer = 1; layer < 5; layer++) {
        const result = this.separable(layer, activity[layer - 1]);
        mixed.push(result.mixed);
        activity.push(result.output);
      }
      const map = this.arrays.readout_map, last = activity[4];
      let response = this.arrays.readout_bias[0];
      for (let i = 0; i < map.length; i++) response += map[i] * last[i];
      return { response: Math.fround(response), activity: activity, mixed: mixed };
    }

    response(image) { return this.forward(image).response; }

    /* The response and its gradient with respect to the (recentred) image. */
    gradient(image) {
      const state = this.forward(image), activity = state.activity;
      let upstream = maskRelu(Float32Array.from(this.arrays.readout_map), activity[4]);
      for (let layer = 4; layer >= 1; layer--) {
        upstream = maskRelu(this.separableBackward(layer, upstream), activity[layer - 1]);
      }
      return { response: state.response, gradient: this.layer0Backward(upstream) };
    }

    separableBackward(layer, upstream) {
      const g = this.geometry[layer], previous = this.counts[layer - 1], count = this.counts[layer];
      const plane = g.out * g.out, inPlane = g.size * g.size;
      const pointwise = this.arrays["pointwise" + layer], depthwise = this.arrays["depthwise" + layer];
      const mixed = new Float32Array(previous * plane);
      mix(upstream, count, mixed, previous, plane, function (c, k) { return pointwise[k * previous + c]; });
      const input = new Float32Array(previous * inPlane);
      for (let c = 0; c < previous; c++) {
        for (let tap = 0; tap < 25; tap++) {
          tapPass(input, c * inPlane, mixed, c * plane, depthwise[c * 25 + tap], Math.floor(tap / 5), tap % 5, g, true);
        }
      }
      return input;
    }

    /* Layer 0's input gradient: the upstream gradient correlated with the flipped kernels. */
    layer0Backward(upstream) {
      const count = this.counts[0], plane = SIDE * SIDE, padded = pad(upstream, count);
      const kernel = this.arrays.kernel0, gradient = new Float32Array(3 * plane), flipped = new Float32Array(5);
      for (let c = 0; c < 3; c++) {
        for (let k = 0; k < count; k++) {
          for (let dy = 0; dy < 5; dy++) {
            const row = ((k * 3 + c) * 5 + dy) * 5;
            for (let dx = 0; dx < 5; dx++) flipped[dx] = kernel[row + 4 - dx];
            rowPass(padded, k * PADDED * PADDED + (4 - dy) * PADDED, gradient, c * plane, flipped);
          }
        }
      }
      return gradient;
    }
  }

  /* output plane o += sum over input planes i of weight(o, i) * input plane i, four input planes at a time. */
  function mix(input, inputs, output, outputs, plane, weight) {
    for (let o = 0; o < outputs; o++) {
      const target = o * plane;
      let i = 0;
      for (; i + 4 <= inputs; i += 4) {
        const w0 = weight(o, i), w1 = weight(o, i + 1), w2 = weight(o, i + 2), w3 = weight(o, i + 3);
        const s0 = i * plane, s1 = s0 + plane, s2 = s1 + plane, s3 = s2 + plane;
        for (let p = 0; p < plane; p++) {
          output[target + p] += w0 * input[s0 + p] + w1 * input[s1 + p] + w2 * input[s2 + p] + w3 * input[s3 + p];
        }
      }
      for (; i < inputs; i++) {
        const w = weight(o, i), source = i * plane;
        for (let p = 0; p < plane; p++) output[target + p] += w * input[source + p];
      }
    }
  }

  /* Planes (count, 112, 112) copied into zeroed planes (count, 116, 116): 2 pixels of padding. */
  function pad(planes, count) {
    const padded = new Float32Array(count * PADDED * PADDED);
    for (let c = 0; c < count; c++) {
      for (let y = 0; y < SIDE; y++) {
        padded.set(planes.subarray((c * SIDE + y) * SIDE, (c * SIDE + y + 1) * SIDE), (c * PADDED + y + 2) * PADDED + 2);
      }
    }
    return padded;
  }

  /* output(plane) += one kernel row (5 taps) slid over a padded plane starting at row offset `source`. */
  function rowPass(padded, source, output, target, taps) {
    const w0 = taps[0], w1 = taps[1], w2 = taps[2], w3 = taps[3], w4 = taps[4];
    for (let y = 0; y < SIDE; y++) {
      const p = source + y * PADDED, o = target + y * SIDE;
      for (let x = 0; x < SIDE; x++) {
        output[o + x] += w0 * padded[p + x] + w1 * padded[p + x + 1] + w2 * padded[p + x + 2] +
          w3 * padded[p + x + 3] + w4 * padded[p + x + 4];
      }
    }
  }

  function relu(values) {
    for (let i = 0; i < values.length; i++) if (values[i] < 0) values[i] = 0;
    return values;
  }

  /* Zeroes the gradient where the ReLU was off (its output was not positive). */
  function maskRelu(gradient, activity) {
    for (let i = 0; i < gradient.length; i++) if (!(activity[i] > 0)) gradient[i] = 0;
    return gradient;
  }

  /* RGBA bytes (112*112*4, e.g. ImageData.data) to a recentred planar image. */
  function fromRGBA(data) {
    const plane = SIDE * SIDE, image = new Float32Array(3 * plane);
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) image[c * plane + p] = data[p * 4 + c] - MEANS[c];
    }
    return image;
  }

  /* A recentred planar image to RGBA bytes, rounded and clipped to 0..255. */
  function toRGBA(image, data) {
    const plane = SIDE * SIDE;
    for (let p = 0; p < plane; p++) {
      for (let c = 0; c < 3; c++) data[p * 4 + c] = Math.min(255, Math.max(0, Math.round(image[c * plane + p] + MEANS[c])));
      data[p * 4 + 3] = 255;
    }
    return data;
  }

  root.CompactEngine = { CompactModel: CompactModel, MEANS: MEANS, SIDE: SIDE, fromRGBA: fromRGBA, toRGBA: toRGBA, decodeFloats: decodeFloats };
})(typeof window !== "undefined" ? window : globalThis);
