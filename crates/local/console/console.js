// The operators' console: one WebSocket (/v1/ops/stream) pushes every view; nothing is polled.
// Messages: {type: "snapshot"} redraws the queues, sessions, metrics and DLQ; {type: "event"} adds
// to the feed; {type: "session"} redraws the watched session and its workflows' graphs.

import { drawGraph } from "./graph.js";
import { drawHistogram } from "./charts.js";

const TOKEN_KEY = "queuematch.operatorToken";
const FEED_LENGTH = 60;
const $ = (selector, root = document) => root.querySelector(selector);

let token = null;
let socket = null;
let watched = null;
// Whether the operator chose the watched session; until then the newest is followed.
let picked = false;
let attempts = 0;

// ---- the operator token ------------------------------------------------------------------------

// `queuematch dev` prints /console#token=…: a fragment never leaves the browser. It is kept for
// this tab only and wiped from the address bar.
function takeToken() {
  const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function askForToken(message) {
  const form = $("#login");
  form.hidden = false;
  if (message) form.dataset.message = message;
  $("p", form).textContent = message
    ? `${message} Mint a token with queuematch token --operator.`
    : $("p", form).textContent;
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = new FormData(e.target).get("token").trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  e.target.hidden = true;
  attempts = 0;
  connect();
});

// ---- the stream --------------------------------------------------------------------------------

function setConnection(state, text) {
  const badge = $("#connection");
  badge.dataset.state = state;
  badge.textContent = text;
}

function connect() {
  if (socket) socket.close();
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/v1/ops/stream?token=${encodeURIComponent(token)}`;
  let opened = false;
  socket = new WebSocket(url);
  setConnection("connecting", "connecting…");
  socket.addEventListener("open", () => {
    opened = true;
    attempts = 0;
    setConnection("live", "live");
    // A reconnect that succeeds takes back the form a refused attempt showed.
    $("#login").hidden = true;
    $("#views").hidden = false;
    if (watched) socket.send(JSON.stringify({ watch: watched }));
  });
  socket.addEventListener("message", (m) => receive(JSON.parse(m.data)));
  socket.addEventListener("close", (e) => {
    if (e.target !== socket) return;
    // A refused upgrade (bad or expired token) closes before opening: ask again, and keep trying
    // in case the server was only restarting. Backoff with full jitter, at most 10 s.
    if (!opened) askForToken("The stream refused the connection: the token may be wrong or expired, or the server is down.");
    attempts += 1;
    const delay = Math.random() * Math.min(10000, 250 * 2 ** attempts);
    setConnection("reconnecting", `disconnected; retrying in ${(delay / 1000).toFixed(1)} s`);
    setTimeout(() => { if (e.target === socket) connect(); }, delay);
  });
}

function receive(message) {
  switch (message.type) {
    case "snapshot": return renderSnapshot(message);
    case "event": return renderEvent(message.event);
    case "session": return message.sessionId === watched && renderSession(message);
    case "redriven": return redriven(message);
    case "error": return streamError(message.detail);
  }
}

function watch(sessionId) {
  watched = sessionId;
  for (const row of document.querySelectorAll("#sessions tbody tr")) {
    row.setAttribute("aria-selected", String(row.dataset.sessionId === sessionId));
  }
  if (socket?.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ watch: sessionId }));
}

// ---- drawing -----------------------------------------------------------------------------------

function time(ms) {
  return ms ? new Date(ms).toLocaleTimeString() : "";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (className) td.className = className;
  return td;
}

function status(value) {
  const span = document.createElement("span");
  span.className = "status";
  span.dataset.status = value;
  span.textContent = value;
  return span;
}

function renderSnapshot(s) {
  const depth = s.ticketsQueue ?? {};
  for (const field of document.querySelectorAll("#queues [data-field]")) {
    field.textContent = depth.error ? "?" : depth[field.dataset.field] ?? 0;
  }
  $("#queues tbody").replaceChildren(...(s.queues ?? []).map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.name;
    tr.append(cell(q.name), cell(q.searching), cell(q.requiresAcceptance), cell(q.placing), cell(q.activeSessions));
    return tr;
  }));

  const sessions = s.sessions ?? [];
  $("#sessions .empty").hidden = sessions.length > 0;
  $("#sessions tbody").replaceChildren(...sessions.map((x) => {
    const tr = document.createElement("tr");
    tr.dataset.sessionId = x.sessionId;
    tr.dataset.status = x.status;
    tr.setAttribute("aria-selected", String(x.sessionId === watched));
    const st = cell("");
    st.append(status(x.status));
    tr.append(cell(x.sessionId.slice(-8), "id"), cell(x.queue), st, cell(x.players), cell(time(x.createdAt)));
    tr.title = x.sessionId;
    tr.addEventListener("click", () => { picked = true; watch(x.sessionId); });
    return tr;
  }));
  // Follow the newest session until the operator picks one.
  if (!picked && sessions.length && sessions[0].sessionId !== watched) watch(sessions[0].sessionId);

  $("#metrics .histograms").replaceChildren(...(s.histograms ?? []).map(drawHistogram));

  const letters = Array.isArray(s.deadLetters) ? s.deadLetters : [];
  $("#dlq .empty").hidden = letters.length > 0;
  $("#redrive").disabled = letters.length === 0;
  $("#dlq tbody").replaceChildren(...letters.map((l) => {
    const tr = document.createElement("tr");
    tr.append(cell(l.messageId.slice(-8)), cell(l.receiveCount), cell(time(l.sentAt)), cell(l.body, "body"));
    return tr;
  }));
}

function describe(event) {
  const id = event.sessionId ?? event.ticketId ?? event.matchId ?? "";
  const extra = event.status ?? event.acceptance ?? "";
  return `${event.type} ${String(id).slice(-8)} ${extra} ${event.reason ?? ""}`.trim();
}

function renderEvent(event) {
  const list = $("#feed ol");
  const li = document.createElement("li");
  li.dataset.type = event.type;
  li.textContent = `${new Date().toLocaleTimeString()}  ${describe(event)}`;
  list.prepend(li);
  while (list.children.length > FEED_LENGTH) list.lastChild.remove();
}

function renderSession(d) {
  const section = $("#session");
  section.hidden = false;
  section.dataset.sessionId = d.sessionId;
  const session = d.session ?? {};
  section.dataset.status = session.status ?? "";
  $("[data-field=sessionId]", section).textContent = d.sessionId;
  $("[data-field=status]", section).replaceChildren(session.status ? status(session.status) : "");
  const parts = [session.queue, session.players && `${session.players.length} players`,
    session.endpoint && `on ${session.endpoint}`, session.reason].filter(Boolean);
  $("[data-field=summary]", section).textContent = d.error ?? parts.join(" · ");

  $(".workflows", section).replaceChildren(...(d.executions ?? []).map((x) => {
    const div = document.createElement("div");
    div.className = "workflow";
    div.dataset.definition = x.definition;
    div.dataset.status = x.status;
    const h = document.createElement("h3");
    h.append(`${x.definition} `, status(x.status), x.current ? ` in ${x.current}` : "");
    h.title = x.id;
    div.append(h);
    if (x.graph) div.append(drawGraph(x.graph, x));
    return div;
  }));

  $(".timeline tbody", section).replaceChildren(...(d.timeline ?? []).map((t) => {
    const tr = document.createElement("tr");
    const st = cell("");
    st.append(status(t.status));
    tr.append(cell(time(t.at)), st, cell(t.state), cell(t.detail, "body"));
    return tr;
  }));
}

// ---- redrive -----------------------------------------------------------------------------------

// Over the stream, the operator's authenticated channel; the snapshot that follows redraws the DLQ.
$("#redrive").addEventListener("click", () => {
  $("#redrive").disabled = true;
  $("#dlq .result").textContent = "Redriving…";
  socket?.send(JSON.stringify({ redrive: true }));
});

function redriven(message) {
  $("#dlq .result").textContent = `Redrove ${message.moved} message(s) to the tickets queue.`;
}

function streamError(detail) {
  const result = $("#dlq .result");
  if (result.textContent === "Redriving…") result.textContent = detail;
  console.warn("stream:", detail);
}

// ---- start -------------------------------------------------------------------------------------

token = takeToken();
if (token) connect();
else askForToken();
