// jetflow dashboard: live sections, the batch grid, the in-flight list.
// Plain JS, no build step; everything drawn from server data is set as
// text or as HTML the server rendered (and escaped).
"use strict";

// Sections with data-live follow a server-sent event stream: each
// `update` event carries the section's new HTML.
function followLive(el) {
  const source = new EventSource(el.dataset.live);
  source.addEventListener("update", (e) => {
    morph(el, e.data);
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  });
}

// Puts `html` into `el`, replacing only the top-level children that
// changed: the tally changes every second on a busy job, the action
// buttons only when the status does, and a button replaced between
// mouse-down and mouse-up would swallow the user's click.
function morph(el, html) {
  const next = document.createElement("template");
  next.innerHTML = html;
  const fresh = Array.from(next.content.childNodes);
  const old = Array.from(el.childNodes);
  const same = fresh.length === old.length && fresh.every((node, i) => node.nodeType === old[i].nodeType);
  if (!same) {
    el.replaceChildren(...fresh);
    return;
  }
  fresh.forEach((node, i) => {
    if (!node.isEqualNode(old[i])) el.replaceChild(node, old[i]);
  });
}

// Whether the job's page says it has ended (the live section keeps the
// status current): then the grid and in-flight list stop refreshing.
const ENDED = ["completed", "partial", "failed", "cancelled"];
function jobEnded() {
  const status = document.getElementById("status");
  return status !== null && ENDED.includes(status.textContent.trim());
}

// Runs `refresh` every `ms` while the job runs, and once more after it ends.
function whileRunning(refresh, ms) {
  const timer = setInterval(() => {
    if (jobEnded()) clearInterval(timer);
    refresh();
  }, ms);
}

const COLORS = { p: "#c9ced6", r: "#4a90d9", c: "#3aa564", x: "#e0703a" };
const STATUS = { p: "pending", r: "processing", c: "completed", x: "partial" };
const CELL = 9;

// The grid of batches: one canvas, whatever the count (20,000 batches
// are 20,000 rectangles, not 20,000 elements).
function drawGrid(grid) {
  const canvas = grid.querySelector("canvas");
  const tip = grid.querySelector(".tip");
  let rows = [];
  let perRow = 1;
  function paint() {
    const width = Math.max(grid.clientWidth, CELL * 10);
    perRow = Math.max(1, Math.floor(width / CELL));
    canvas.width = perRow * CELL;
    canvas.height = Math.ceil(rows.length / perRow) * CELL;
    const ctx = canvas.getContext("2d");
    rows.forEach((b, i) => {
      ctx.fillStyle = COLORS[b[4]] || COLORS.p;
      ctx.fillRect((i % perRow) * CELL, Math.floor(i / perRow) * CELL, CELL - 1, CELL - 1);
    });
    grid.dataset.drawn = String(rows.length);
  }
  function at(event) {
    const box = canvas.getBoundingClientRect();
    const i = Math.floor((event.clientY - box.top) / CELL) * perRow + Math.floor((event.clientX - box.left) / CELL);
    return rows[i];
  }
  function show(event) {
    const b = at(event);
    if (!b) { tip.hidden = true; return; }
    tip.textContent = `batch ${b[0]}: ${b[1]} items, ${b[2]} succeeded, ${b[3]} failed (${STATUS[b[4]]})`;
    tip.style.left = `${event.offsetX + 12}px`;
    tip.style.top = `${event.offsetY + 12}px`;
    tip.hidden = false;
  }
  canvas.addEventListener("mousemove", show);
  canvas.addEventListener("click", show);
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });
  async function load() {
    const response = await fetch(grid.dataset.src, { credentials: "same-origin" });
    if (!response.ok) return;
    rows = (await response.json()).batches;
    paint();
    const count = document.getElementById("batch-count");
    if (count) count.textContent = String(rows.length);
  }
  load();
  if (grid.dataset.active === "true") whileRunning(load, 3000);
  window.addEventListener("resize", paint);
}

async function loadFragment(el) {
  const response = await fetch(el.dataset.src, { credentials: "same-origin" });
  if (response.ok) el.innerHTML = await response.text();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-live]").forEach(followLive);
  const grid = document.getElementById("grid");
  if (grid) drawGrid(grid);
  const inflight = document.getElementById("inflight");
  if (inflight) {
    loadFragment(inflight);
    if (inflight.dataset.active === "true") whileRunning(() => loadFragment(inflight), 2000);
  }
});
