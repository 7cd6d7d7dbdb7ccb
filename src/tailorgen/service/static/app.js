// The page of `tailorgen serve`: plain JS over the JSON API. Every string from the data goes in
// through textContent or an attribute, never as HTML (ids and titles may hold any text).
"use strict";

const $ = (id) => document.getElementById(id);
let target = null;

async function api(path, body) {
  const init = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const res = await fetch(path, init);
  const data = await res.json();
  if (!res.ok) throw new Error(data.detail || res.statusText);
  return data;
}

function figure(src, caption, cls) {
  const fig = document.createElement("figure");
  if (cls) fig.className = cls;
  const img = document.createElement("img");
  img.src = src;
  img.alt = caption;
  img.title = caption;
  const cap = document.createElement("figcaption");
  cap.textContent = caption;
  fig.append(img, cap);
  return fig;
}

function itemFigure(item) {
  const fig = figure("/api/item-image?item=" + encodeURIComponent(item.item_id), item.title || item.item_id);
  fig.dataset.item = item.item_id;
  fig.addEventListener("click", () => setTarget(item));
  return fig;
}

function show(row, figures) { $(row).replaceChildren(...figures); }

function fail(row, error) {
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = error.message;
  $(row).replaceChildren(p);
}

async function run(row, work) {
  const p = document.createElement("p");
  p.className = "note";
  p.textContent = "working…";
  $(row).replaceChildren(p);
  try { await work(); } catch (e) { fail(row, e); }
}

async function setTarget(item) {
  target = item;
  $("target-name").textContent = "(" + (item.title || item.item_id) + ")";
  document.querySelectorAll("figure.target").forEach((f) => f.classList.remove("target"));
  document.querySelectorAll("figure").forEach((f) => { if (f.dataset.item === item.item_id) f.classList.add("target"); });
  const user = $("user").value, q = "user=" + encodeURIComponent(user) + "&item=" + encodeURIComponent(item.item_id);
  $("rating").textContent = $("explanation").textContent = "";
  try {
    const r = await api("/api/rate?" + q);
    $("rating").textContent = "predicted rating " + r.rating.toFixed(2) + " (P(1..5) = " +
      r.distribution.map((p) => p.toFixed(2)).join(", ") + ")";
    const text = (await api("/api/explain?" + q)).explanation;
    $("explanation").textContent = text ? "“" + text + "”" : "(the model wrote no explanation)";
  } catch (e) { $("rating").textContent = "UniMP: " + e.message; }
}

async function loadUser() {
  const user = $("user").value;
  const u = await api("/api/users/" + encodeURIComponent(user));
  show("history", u.history.map(itemFigure));
  $("interests").replaceChildren(...(u.interests || []).map((t) => {
    const s = document.createElement("span"); s.className = "tag"; s.textContent = t; return s; }));
  $("query").value = u.last_query || (u.interests || []).slice(0, 2).join(" ");
  ["search", "personalized", "imagined", "generated"].forEach((r) => $(r).replaceChildren());
  await run("recommend", async () => {
    const r = await api("/api/recommend?k=10&user=" + encodeURIComponent(user));
    show("recommend", r.items.map(itemFigure));
    if (r.items.length) await setTarget(r.items[0]);
  });
}

function madeFigures(record, captions) {
  return record.images.map((src, j) => figure(src, captions ? captions[j] : "image " + (j + 1), "made"));
}

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = "user=" + encodeURIComponent($("user").value) + "&query=" + encodeURIComponent($("query").value);
  run("search", async () => show("search", (await api("/api/search?k=10&" + q)).items.map(itemFigure)));
});
$("personalize").addEventListener("click", () => run("personalized", async () => {
  if (!target) throw new Error("pick a target item first");
  const r = await api("/api/personalize", {user: $("user").value, item: target.item_id, n: 4});
  show("personalized", madeFigures(r));
}));
$("imagine-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  run("imagined", async () => show("imagined", madeFigures(
    await api("/api/imagine", {user: $("user").value, keywords: $("keywords").value, n: 4}))));
});
$("generate").addEventListener("click", () => run("generated", async () => {
  const r = await api("/api/generate-next", {user: $("user").value, n: 4});
  show("generated", madeFigures(r, r.titles));
}));
$("user").addEventListener("change", () => loadUser().catch((e) => fail("history", e)));

async function start() {
  let ready = await fetch("/ready").then((r) => r.json());
  while (!ready.ready) {
    $("status").textContent = "loading models…";
    await new Promise((ok) => setTimeout(ok, 1000));
    ready = await fetch("/ready").then((r) => r.json());
  }
  $("status").textContent = Object.entries(ready.engines).map(([k, v]) => k + ": " + v).join(" · ");
  const users = await api("/api/users?limit=1000");
  $("user").replaceChildren(...users.users.map((u) => { const o = document.createElement("option"); o.value = o.textContent = u; return o; }));
  if (users.users.length) await loadUser();
}
start().catch((e) => { $("status").textContent = e.message; $("status").className = "error"; });
