/* Gradient-ascent synthesis in the browser (SPEC section 7), the recipe of
 * classes/analysis/synthesis.py: start from uniform noise in 128..178 per raw
 * pixel; each step take the gradient of the response, divide it by its RMS
 * (+1e-5), blur it with a Gaussian of sigma 1 pixel (mirrored edges), move 10
 * pixel units up (down to minimize), clip to raw 0..255; every 50 steps blur
 * the image with sigma 1; keep the best image seen. Needs engine.js.
 */
(function (root) {
  "use strict";
  const engine = root.CompactEngine;
  const SIDE = engine.SIDE, PLANE = SIDE * SIDE, MEANS = engine.MEANS;
  const RMS_EPSILON = 1e-5;

  /* A small seeded generator (mulberry32): the same seed gives the same noise. */
  function randomGenerator(seed) {
    let state = seed >>> 0;
    return function () {
      state = (state + 0x6D2B79F5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /* The normalised Gaussian of scipy.ndimage.gaussian_filter (radius int(4 sigma + 0.5)). */
  function gaussianKernel(sigma) {
    const radius = Math.floor(4 * sigma + 0.5), kernel = new Float32Array(2 * radius + 1);
    let total = 0;
    for (let i = -radius; i <= radius; i++) total += Math.exp(-0.5 * (i / sigma) * (i / sigma));
    for (let i = -radius; i <= radius; i++) kernel[i + radius] = Math.exp(-0.5 * (i / sigma) * (i / sigma)) / total;
    return kernel;
  }

  function mirror(index) {
    if (index < 0) return -index - 1;
    if (index >= SIDE) return 2 * SIDE - index - 1;
    return index;
  }

  /* Blurs each plane over space: a pass along rows, then one along columns. */
  function blur(image, sigma) {
    const kernel = gaussianKernel(sigma), radius = (kernel.length - 1) / 2;
    const middle = new Float32Array(image.length), output = new Float32Array(image.length);
    for (let c = 0; c < 3; c++) {
      const base = c * PLANE;
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          let sum = 0;
          for (let t = -radius; t <= radius; t++) sum += kernel[t + radius] * image[base + mirror(y + t) * SIDE + x];
          middle[base + y * SIDE + x] = sum;
        }
      }
      for (let y = 0; y < SIDE; y++) {
        for (let x = 0; x < SIDE; x++) {
          let sum = 0;
          for (let t = -radius; t <= radius; t++) sum += kernel[t + radius] * middle[base + y * SIDE + mirror(x + t)];
          output[base + y * SIDE + x] = sum;
        }
      }
    }
    return output;
  }

  function clip(image) {
    for (let c = 0; c < 3; c++) {
      const low = -MEANS[c], high = 255 - MEANS[c];
      for (let p = c * PLANE; p < (c + 1) * PLANE; p++) image[p] = Math.min(high, Math.max(low, image[p]));
    }
    return image;
  }

  /* Uniform noise in 128..178 per raw pixel, recentred and planar. */
  function initialNoise(seed) {
    const next = randomGenerator(seed), image = new Float32Array(3 * PLANE);
    for (let p = 0; p < PLANE; p++) {
      for (let c = 0; c < 3; c++) image[c * PLANE + p] = 128 + 50 * next() - MEANS[c];
    }
    return image;
  }

  class Synthesis {
    /* options: seed, steps, direction ("maximize"/"minimize"), stepSize (10),
     * blurEvery (50), blurSigma (1), gradientSigma (1), start (a planar image). */
    constructor(model, options) {
      const settings = Object.assign({ seed: 0, steps: 100, direction: "maximize", stepSize: 10,
        blurEvery: 50, blurSigma: 1, gradientSigma: 1 }, options || {});
      this.model = model;
      this.settings = settings;
      this.sign = settings.direction === "minimize" ? -1 : 1;
      this.image = settings.start ? Float32Array.from(settings.start) : initialNoise(settings.seed);
      this.initialResponse = model.response(this.image);
      this.best = Float32Array.from(this.image);
      this.bestValue = this.sign * this.initialResponse;
      this.trajectory = [];
      this.done = 0;
    }

    get finished() { return this.done >= this.settings.steps; }

    get bestResponse() { return this.sign * this.bestValue; }

    /* One gradient step; the last one also scores the final image. */
    step() {
      if (this.finished) return this.bestResponse;
      const result = this.model.gradient(this.image), gradient = result.gradient;
      this.trajectory.push(result.response);
      this.keepIfBetter(this.image, result.response);
      let squares = 0;
      for (let i = 0; i < gradient.length; i++) squares += gradient[i] * gradient[i];
      const scale = this.sign * this.settings.stepSize / (Math.sqrt(squares / gradient.length) + RMS_EPSILON);
      const smooth = blur(gradient, this.settings.gradientSigma);
      for (let i = 0; i < smooth.length; i++) this.image[i] += scale * smooth[i];
      clip(this.image);
      this.done += 1;
      if (this.done % this.settings.blurEvery === 0) this.image = clip(blur(this.image, this.settings.blurSigma));
      if (this.finished) this.keepIfBetter(this.image, this.model.response(this.image));
      return result.response;
    }

    keepIfBetter(image, response) {
      if (this.sign * response > this.bestValue) {
        this.bestValue = this.sign * response;
        this.best = Float32Array.from(image);
      }
    }
  }

  root.CompactSynthesis = { Synthesis: Synthesis, blur: blur, initialNoise: initialNoise, gaussianKernel: gaussianKernel };
})(typeof window !== "undefined" ? window : globalThis);
