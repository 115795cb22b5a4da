/* A neuron page's live model: draw, upload or pick an image and see the
 * response; synthesize a preferred image step by step. Needs engine.js,
 * synthesis.js and the page's data file (data/<stem>.js). */
(function () {
  "use strict";
  const $ = function (id) { return document.getElementById(id); };
  const stem = document.body.dataset.model;
  const data = window.EXPLORER_DATA && window.EXPLORER_DATA[stem];
  const readout = $("response"), message = $("message");
  const canvas = $("stimulus"), context = canvas.getContext("2d", { willReadFrequently: true });
  let model = null, synthesis = null, pending = null;

  function fail(text) { message.textContent = text; }

  /* Percentile of a response among the release images, from the build's quantiles. */
  function percentile(response) {
    const quantiles = data.quantiles;
    let below = 0;
    while (below < quantiles.length && quantiles[below] <= response) below++;
    if (below === 0) return "below every release image";
    if (below === quantiles.length) return "above every release image";
    return "higher than about " + (below - 1) + "% of the release images";
  }

  function show(response, extra) {
    readout.dataset.response = String(response);
    readout.textContent = "Response " + response.toFixed(4) + ": " + percentile(response) + (extra || "");
  }

  function evaluate(extra) {
    const pixels = context.getImageData(0, 0, 112, 112).data;
    show(model.response(CompactEngine.fromRGBA(pixels)), extra);
  }

  function fill(colour) {
    context.fillStyle = colour;
    context.fillRect(0, 0, 112, 112);
  }

  /* Draws an image source scaled to 112 x 112 and evaluates it. */
  function drawSource(source, extra) {
    context.imageSmoothingEnabled = true;
    context.imageSmoothingQuality = "high";
    context.drawImage(source, 0, 0, 112, 112);
    fail("");
    evaluate(extra);
  }

  function loadImage(url, name, extra, done) {
    const image = new Image();
    image.onload = function () {
      drawSource(image, (image.naturalWidth !== 112 || image.naturalHeight !== 112)
        ? " (resized from " + image.naturalWidth + "x" + image.naturalHeight + " to 112x112)" : extra);
      if (done) done();
    };
    image.onerror = function () {
      fail("Could not read \u201c" + name + "\u201d as an image. Try a PNG, JPEG, GIF or WebP file.");
      if (done) done();
    };
    image.src = url;
  }

  function setUpUpload() {
    $("upload").addEventListener("change", function (event) {
      const file = event.target.files && event.target.files[0];
      if (!file) return;
      const url = URL.createObjectURL(file);
      loadImage(url, file.name, "", function () { URL.revokeObjectURL(url); });
    });
  }

  function setUpPicks() {
    const box = $("picks");
    data.stimuli.forEach(function (stimulus, index) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.index = String(index);
      button.title = stimulus.label + " (build: " + stimulus.response.toFixed(4) + ")";
      const image = document.createElement("img");
      image.src = stimulus.url;
      image.alt = stimulus.label + ", response " + stimulus.response.toFixed(4);
      button.appendChild(image);
      button.addEventListener("click", function () {
        loadImage(stimulus.url, stimulus.label, " (" + stimulus.label + "; the build computed " +
          stimulus.response.toFixed(4) + ")");
      });
      box.appendChild(button);
    });
  }

  function setUpDrawing() {
    let drawing = false, last = 0;
    function point(event) {
      const box = canvas.getBoundingClientRect();
      return [(event.clientX - box.left) * 112 / box.width, (event.clientY - box.top) * 112 / box.height];
    }
    function paint(event) {
      const at = point(event);
      context.fillStyle = $("brush-colour").value;
      context.beginPath();
      context.arc(at[0], at[1], Number($("brush-size").value) / 2, 0, 2 * Math.PI);
      context.fill();
      if (performance.now() - last > 120) { evaluate(); last = performance.now(); }
    }
    canvas.addEventListener("pointerdown", function (event) {
      drawing = true; canvas.setPointerCapture(event.pointerId); paint(event);
    });
    canvas.addEventListener("pointermove", function (event) { if (drawing) paint(event); });
    canvas.addEventListener("pointerup", function () { drawing = false; evaluate(); });
    $("clear").addEventListener("click", function () { fill("rgb(128,128,128)"); evaluate(" (uniform gray)"); });
    $("noise").addEventListener("click", function () {
      const pixels = context.createImageData(112, 112);
      for (let i = 0; i < pixels.data.length; i++) pixels.data[i] = i % 4 === 3 ? 255 : Math.floor(Math.random() * 256);
      context.putImageData(pixels, 0, 0);
      evaluate(" (random noise)");
    });
  }

  function plotTrajectory(values) {
    const chart = $("trajectory"), pen = chart.getContext("2d"), target = data.best_natural.response;
    const low = Math.min(target, ...values), high = Math.max(target, ...values), span = (high - low) || 1;
    const x = function (i) { return 40 + i * (chart.width - 50) / Math.max(values.length - 1, 1); };
    const y = function (v) { return chart.height - 20 - (v - low) / span * (chart.height - 35); };
    pen.clearRect(0, 0, chart.width, chart.height);
    pen.fillStyle = "#555a66"; pen.font = "11px system-ui, sans-serif";
    pen.fillText(high.toFixed(2), 2, 16); pen.fillText(low.toFixed(2), 2, chart.height - 20);
    pen.fillText("step " + values.length, chart.width - 60, chart.height - 4);
    pen.setLineDash([5, 4]); pen.strokeStyle = "#555a66"; pen.beginPath();
    pen.moveTo(40, y(target)); pen.lineTo(chart.width - 10, y(target)); pen.stroke(); pen.setLineDash([]);
    pen.strokeStyle = "#c2410c"; pen.lineWidth = 2; pen.beginPath();
    values.forEach(function (v, i) { if (i === 0) pen.moveTo(x(i), y(v)); else pen.lineTo(x(i), y(v)); });
    pen.stroke();
  }

  function showImage(image) {
    const pixels = context.createImageData(112, 112);
    CompactEngine.toRGBA(image, pixels.data);
    context.putImageData(pixels, 0, 0);
  }

  function synthesisStatus(run) {
    const target = data.best_natural.response, status = $("synthesis-status");
    const passed = run.trajectory.findIndex(function (value) { return value > target; });
    status.dataset.step = String(run.done);
    status.dataset.best = String(run.bestResponse);
    status.dataset.passed = String(passed >= 0 ? passed + 1 : -1);
    status.textContent = "Step " + run.done + " of " + run.settings.steps + ": best response " +
      run.bestResponse.toFixed(4) + (passed >= 0 ? "; above the best release image since step " + (passed + 1)
        : "; the best release image gives " + target.toFixed(4)) + (run.finished ? ". Done: showing the best image." : "");
  }

  function synthesizeStep() {
    if (!synthesis || synthesis !== pending) return;
    const response = synthesis.step();
    showImage(synthesis.image);
    show(response);
    plotTrajectory(synthesis.trajectory);
    synthesisStatus(synthesis);
    if (synthesis.finished) {
      showImage(synthesis.best);
      evaluate(" (best synthesized image, rounded to whole pixels)");
      stopSynthesis();
    } else {
      setTimeout(synthesizeStep, 0);
    }
  }

  function stopSynthesis() {
    pending = null;
    $("synthesize").disabled = false;
    $("stop").disabled = true;
  }

  function setUpSynthesis() {
    $("synthesize").addEventListener("click", function () {
      const steps = Math.round(Number($("steps").value)), seed = Math.round(Number($("seed").value));
      if (!(steps >= 1 && steps <= 2000) || !(seed >= 0)) { fail("Steps must be 1 to 2000 and the seed 0 or more."); return; }
      fail("");
      synthesis = new CompactSynthesis.Synthesis(model, { steps: steps, seed: seed });
      pending = window.explorerSynthesis = synthesis;
      $("synthesize").disabled = true;
      $("stop").disabled = false;
      setTimeout(synthesizeStep, 0);
    });
    $("stop").addEventListener("click", function () {
      if (synthesis) { showImage(synthesis.best); evaluate(" (best image so far)"); synthesisStatus(synthesis); }
      stopSynthesis();
    });
  }

  function setUpKeys() {
    document.addEventListener("keydown", function (event) {
      const target = event.target.tagName;
      if (event.altKey || event.ctrlKey || event.metaKey || target === "INPUT" || target === "SELECT" ||
          target === "TEXTAREA" || target === "BUTTON" || target === "CANVAS") return;
      const link = document.querySelector('.pager a[data-key="' + event.key + '"]');
      if (link) window.location.href = link.href;
    });
  }

  function start() {
    if (!data || !window.CompactEngine || !window.CompactSynthesis) {
      readout.textContent = "";
      fail("The live model could not start: its data file (data/" + stem + ".js) or the engine did not load.");
      return;
    }
    model = new CompactEngine.CompactModel(data.spec);
    window.explorerModel = model;
    setUpKeys(); setUpUpload(); setUpPicks(); setUpDrawing(); setUpSynthesis();
    fill("rgb(128,128,128)");
    evaluate(" (uniform gray)");
    if (window.CompactDiagram) CompactDiagram.draw($("diagram"), model);
  }

  start();
})();
