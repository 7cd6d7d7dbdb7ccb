// A participant's study page: show a pair, send the vote, show the next one. Strings from the
// server go in through textContent and attributes only.
"use strict";

const params = new URLSearchParams(location.search);
const studyId = location.pathname.split("/").pop();
const who = {participant: params.get("participant") || "", token: params.get("token") || ""};
let current = null;

function $(id) { return document.getElementById(id); }

function say(text, isError) {
  $("progress").textContent = text;
  $("progress").className = isError ? "error" : "";
}

async function next() {
  const q = new URLSearchParams(who).toString();
  const res = await fetch(`/api/studies/${encodeURIComponent(studyId)}/next?${q}`);
  const pair = await res.json();
  if (!res.ok) throw new Error(pair.detail || res.statusText);
  $("question").textContent = pair.question;
  if (pair.done) {
    current = null;
    document.querySelector(".choices").hidden = $("neither").hidden = true;
    $("history").replaceChildren();
    say("All done: thank you!");
    document.body.dataset.done = "1";
    return;
  }
  current = pair;
  $("history").replaceChildren(...pair.history.map((item) => {
    const img = document.createElement("img");
    img.src = "/api/item-image?item=" + encodeURIComponent(item);
    img.alt = "a past item";
    return img;
  }));
  document.querySelector("#left img").src = pair.left;
  document.querySelector("#right img").src = pair.right;
  say(`${pair.voted} done, ${pair.left_to_do} to go`);
}

async function vote(choice) {
  if (!current) return;
  const body = {...who, pair_id: current.pair_id, order: current.order, choice};
  current = null;
  const res = await fetch(`/api/studies/${encodeURIComponent(studyId)}/votes`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  if (!res.ok) throw new Error((await res.json()).detail || res.statusText);
  await next();
}

for (const [id, choice] of [["left", "left"], ["right", "right"], ["neither", "neither"]]) {
  $(id).addEventListener("click", () => vote(choice).catch((e) => say(e.message, true)));
}
next().catch((e) => say(e.message, true));
