/* The index's filters, sorts and find box, over the table embedded in the page. */
(function () {
  "use strict";
  const table = document.getElementById("models");
  const list = document.getElementById("cards");
  if (!table || !list) return;
  const rows = JSON.parse(table.textContent);
  const cards = new Map(Array.from(list.children).map(function (item) { return [item.dataset.id, item]; }));
  const field = function (id) { return document.getElementById(id); };
  const count = field("count"), message = field("find-message");

  function numberOf(id) {
    const value = field(id).value.trim();
    return value === "" ? null : Number(value);
  }

  function keep(row) {
    const session = field("session").value, animal = field("animal").value;
    const limits = [["min-r", "pearson_r", 1], ["min-r2", "noise_corrected_r2", 1], ["min-dots", "dot_selectivity", 1],
      ["max-filters", "convolutional_filters", -1]];
    if (session && row.session !== session) return false;
    if (animal && row.animal !== animal) return false;
    return limits.every(function (limit) {
      const bound = numberOf(limit[0]), value = row[limit[1]];
      if (bound === null) return true;
      if (value === null || value === undefined) return false;
      return limit[2] > 0 ? value >= bound : value <= bound;
    });
  }

  function sortKey(row, key) {
    const value = row[key];
    if (value === null || value === undefined || Number.isNaN(value)) return -Infinity;
    return key === "convolutional_filters" ? -value : value;
  }

  function update() {
    const key = field("sort").value;
    const shown = rows.filter(keep);
    if (key !== "order") shown.sort(function (a, b) { return sortKey(b, key) - sortKey(a, key); });
    const visible = new Set(shown.map(function (row) { return row.id; }));
    for (const row of rows) cards.get(row.id).hidden = !visible.has(row.id);
    for (const row of shown) list.appendChild(cards.get(row.id));
    count.textContent = shown.length + " of " + rows.length + " models shown";
  }

  /* "201025/2", "201025 2", "201025_neuron2" or "201025/neuron2" name a model. */
  function find(event) {
    event.preventDefault();
    const text = field("find").value.trim();
    const match = text.match(/^(\d{6})\s*[\/_ ]\s*(?:neuron)?\s*(\d+)$/i);
    if (!match) {
      message.textContent = "Type a model as session/neuron, for example 201025/2.";
      return;
    }
    const id = match[1] + "/" + Number(match[2]);
    const row = rows.find(function (item) { return item.id === id; });
    if (!row) {
      const sessions = Array.from(new Set(rows.map(function (item) { return item.session; })));
      message.textContent = "No model " + id + " in this site. Sessions here: " + sessions.join(", ") +
        " (neurons count from 0).";
      return;
    }
    window.location.href = "neurons/" + row.page + ".html";
  }

  const form = field("filters");
  form.addEventListener("input", function () { message.textContent = ""; update(); });
  form.addEventListener("change", update);
  form.addEventListener("submit", find);
  field("find").addEventListener("keydown", function (event) { if (event.key === "Enter") find(event); });
  update();
})();
