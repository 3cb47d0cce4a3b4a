// The conversation: history (GET /sessions/{id}/messages), streamed replies (POST /chat/stream,
// read with fetch + ReadableStream), Stop (POST /chat/stop/{id}), Regenerate (the last prompt
// sent again), re-attaching to a reply still running (GET /chat/stream/{id}), and citations.

import { api, ApiError, openStream, readEvents, SignedOut } from "./api.js";
import { $, announce, clear, h, show } from "./dom.js";
import { openDocument } from "./documents.js";
import { renderMarkdown } from "./markdown.js";

const state = {
  sessionId: null,
  messages: [], // {id, role, content, status, model, sources, error}
  live: null, // the reply being streamed: {message, node, controller, stopRequested}
  loadToken: 0,
};
let hooks = { onSession: () => {}, onActivity: () => {}, model: () => null, useDocuments: () => false };

const messagesNode = () => $("#messages");
const promptNode = () => $("#prompt");
const statusLine = (text, kind = "info") => announce($("#chat-status"), text, kind);
const errorLine = (text) => announce($("#chat-error"), text, "error");

export function initChat(handlers) {
  hooks = { ...hooks, ...handlers };
  $("#composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send(promptNode().value);
  });
  promptNode().addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send(promptNode().value);
    }
  });
  $("#stop").addEventListener("click", stop);
  $("#regenerate").addEventListener("click", regenerate);
}

export function currentSessionId() {
  return state.sessionId;
}

/** Leave the current conversation (the running reply goes on, and is stored, on the server). */
function detach() {
  if (state.live) state.live.controller.abort();
  state.live = null;
  state.loadToken += 1;
  setStreaming(false);
}

export function newChat() {
  detach();
  state.sessionId = null;
  state.messages = [];
  renderAll();
  statusLine("");
  errorLine("");
  promptNode().focus();
}

export async function showSession(id) {
  detach();
  state.sessionId = id;
  state.messages = [];
  const token = state.loadToken;
  renderAll();
  statusLine("Loading…");
  errorLine("");
  let messages;
  try {
    messages = await api(`/sessions/${encodeURIComponent(id)}/messages`);
  } catch (error) {
    if (token !== state.loadToken || error instanceof SignedOut) return;
    statusLine("");
    errorLine(error.status === 404 ? "That chat no longer exists." : `Could not load the chat: ${error.message}`);
    return;
  }
  if (token !== state.loadToken) return;
  statusLine("");
  state.messages = messages.map((m) => ({ ...m, error: null }));
  renderAll();
  const last = state.messages[state.messages.length - 1];
  if (last && last.role === "assistant" && last.status === "streaming") reattach(last);
}

// -- rendering ---------------------------------------------------------------------------------

function renderAll() {
  const container = messagesNode();
  const empty = $("#empty-chat");
  clear(container);
  show(empty, state.messages.length === 0);
  container.append(empty);
  for (const message of state.messages) container.append(messageNode(message));
  updateRegenerate();
  scrollToEnd(true);
}

function scrollToEnd(force = false) {
  const node = messagesNode();
  const nearEnd = node.scrollHeight - node.scrollTop - node.clientHeight < 120;
  if (force || nearEnd) node.scrollTop = node.scrollHeight;
}

/** Redraw a message; follow it down if the reader was at the end (not if they scrolled up). */
function refill(message) {
  const node = messagesNode();
  const following = node.scrollHeight - node.scrollTop - node.clientHeight < 120;
  fill(message);
  if (following) node.scrollTop = node.scrollHeight;
}

function messageNode(message) {
  const who = message.role === "user" ? "You" : message.role === "assistant" ? "Assistant" : "System";
  const node = h("article", {
    class: `msg msg-${message.role}`,
    "data-message-id": message.id || "",
    "data-status": message.status,
    "aria-label": message.role === "user" ? "Your message" : `${who} reply`,
  },
  h("div", { class: "msg-meta" }, who, message.role === "assistant" && message.model
    ? h("span", { class: "msg-model" }, ` · ${message.model}`) : null),
  h("div", { class: "msg-body" }),
  h("p", { class: "msg-note", hidden: true }),
  h("div", { class: "sources", hidden: true }));
  message.node = node;
  fill(message);
  return node;
}

/** (Re)draw a message's body, status note and sources from its state. */
function fill(message) {
  const node = message.node;
  if (!node) return;
  node.dataset.status = message.status;
  node.dataset.messageId = message.id || "";
  const body = node.querySelector(".msg-body");
  clear(body);
  if (message.role === "user") {
    body.append(h("p", { class: "plain" }, message.content));
  } else {
    const sources = message.sources || [];
    const citation = (n) => (sources[n - 1] ? citeButton(sources[n - 1], n) : null);
    body.append(renderMarkdown(message.content, { citation }));
    if (message.status === "streaming") body.append(h("span", { class: "cursor", "aria-hidden": "true" }));
  }
  const note = node.querySelector(".msg-note");
  const text = noteFor(message);
  note.textContent = text;
  note.hidden = !text;
  note.className = `msg-note ${message.status === "error" ? "error" : ""}`;
  renderSources(node.querySelector(".sources"), message.sources || []);
  const model = node.querySelector(".msg-model");
  if (model && message.model) model.textContent = ` · ${message.model}`;
}

function noteFor(message) {
  if (message.status === "stopped") return "Stopped.";
  if (message.status === "error") {
    // A refusal is not a failure: the provider's own reason is the whole sentence.
    if (message.finish_reason === "content_filter" && message.error) return message.error;
    return message.error ? `The reply failed: ${message.error}` : "The reply failed.";
  }
  if (message.status === "complete" && message.role === "assistant" && !message.content) {
    return "The model returned an empty reply.";
  }
  return "";
}

function citeButton(source, n) {
  const page = source.page ? `, page ${source.page}` : "";
  return h("button", {
    type: "button",
    class: "cite",
    title: `${source.filename}${page}`,
    "aria-label": `Source ${n}: ${source.filename}${page}`,
    onclick: () => openDocument(source.document_id, source.page || 1, source.filename),
  }, `[${n}]`);
}

function renderSources(container, sources) {
  clear(container);
  container.hidden = sources.length === 0;
  if (!sources.length) return;
  const list = h("ol", { class: "source-list" });
  sources.forEach((source, index) => {
    const page = source.page ? `, page ${source.page}` : "";
    list.append(h("li", {},
      h("button", {
        type: "button",
        class: "source-link",
        "aria-label": `Open source ${index + 1}: ${source.filename}${page}`,
        onclick: () => openDocument(source.document_id, source.page || 1, source.filename),
      }, `${source.filename}${page}`),
      source.snippet ? h("span", { class: "snippet" }, ` — ${source.snippet}`) : null));
  });
  container.append(h("p", { class: "sources-title" }, "Sources"), list);
}

function setStreaming(on) {
  show($("#stop"), on);
  $("#send").disabled = on;
  messagesNode().setAttribute("aria-busy", String(on));
  updateRegenerate();
}

function updateRegenerate() {
  const last = state.messages[state.messages.length - 1];
  $("#regenerate").disabled = Boolean(state.live) || !last || last.role !== "assistant" ||
    !lastPrompt();
}

function lastPrompt() {
  for (let i = state.messages.length - 1; i >= 0; i -= 1) {
    if (state.messages[i].role === "user") return state.messages[i].content;
  }
  return null;
}

// -- streaming ---------------------------------------------------------------------------------

function describeFailure(error) {
  if (!(error instanceof ApiError)) return "Could not reach the server. Check your connection and try again.";
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    return `Too many requests: ${error.message}.${wait}`.replace("..", ".");
  }
  if (error.status === 502 || error.status === 504) return `The model provider failed: ${error.message}`;
  return error.message;
}

async function send(text, { regenerating = false } = {}) {
  const prompt = text.trim();
  if (!prompt || state.live) return;
  errorLine("");
  statusLine("");
  if (!regenerating) promptNode().value = "";
  const user = { id: null, role: "user", content: prompt, status: "complete", sources: null };
  const reply = { id: null, role: "assistant", content: "", status: "streaming", model: null, sources: null, error: null };
  state.messages.push(user, reply);
  show($("#empty-chat"), false);
  messagesNode().append(messageNode(user), messageNode(reply));
  scrollToEnd(true);
  const body = { prompt, rag: hooks.useDocuments() };
  if (state.sessionId) body.session_id = state.sessionId;
  const model = hooks.model();
  if (model) body.model = model;
  const live = { message: reply, controller: new AbortController(), stopRequested: false };
  state.live = live;
  setStreaming(true);
  let response;
  try {
    response = await openStream("/chat/stream", { method: "POST", body, signal: live.controller.signal });
  } catch (error) {
    if (state.live !== live) return;
    // Nothing was stored: take the two bubbles back and give the prompt back to edit.
    state.messages = state.messages.filter((m) => m !== user && m !== reply);
    user.node.remove();
    reply.node.remove();
    show($("#empty-chat"), state.messages.length === 0);
    if (!regenerating && !promptNode().value) promptNode().value = prompt;
    state.live = null;
    setStreaming(false);
    if (!(error instanceof SignedOut)) errorLine(describeFailure(error));
    return;
  }
  await follow(live, response);
}

function regenerate() {
  const prompt = lastPrompt();
  if (prompt) send(prompt, { regenerating: true });
}

async function reattach(message) {
  const live = { message, controller: new AbortController(), stopRequested: false };
  state.live = live;
  setStreaming(true);
  try {
    const response = await openStream(`/chat/stream/${encodeURIComponent(message.id)}`, {
      signal: live.controller.signal,
    });
    message.content = "";
    await follow(live, response);
  } catch (error) {
    if (state.live !== live) return;
    state.live = null;
    setStreaming(false);
    if (!(error instanceof SignedOut) && error.name !== "AbortError") errorLine(describeFailure(error));
  }
}

async function follow(live, response) {
  const message = live.message;
  let frame = 0;
  const redraw = () => {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      refill(message);
    });
  };
  try {
    await readEvents(response, (event) => {
      if (state.live !== live) return;
      if (event.message_id && !message.id) {
        message.id = event.message_id;
        if (live.stopRequested) requestStop(live);
      }
      if (event.model) message.model = event.model;
      if (event.session_id && event.session_id !== state.sessionId) {
        state.sessionId = event.session_id;
        hooks.onSession(event.session_id);
      }
      if (event.delta) {
        message.content += event.delta;
        redraw();
      }
      if (event.done) {
        message.status = event.status || "complete";
        message.finish_reason = event.finish_reason || null;
        message.error = event.error || null;
        message.sources = event.sources || null;
      }
    });
  } catch (error) {
    if (state.live !== live || error.name === "AbortError") return;
    message.status = "error";
    message.error = "the connection to the server dropped. The reply may still finish: reopen the chat to see it.";
  } finally {
    if (frame) cancelAnimationFrame(frame);
  }
  if (state.live !== live) return;
  if (message.status === "streaming") {
    // The stream ended without its closing event: the server went away mid-reply.
    message.status = "error";
    message.error = "the stream ended early. Reopen the chat to see what was stored.";
  }
  state.live = null;
  refill(message);
  setStreaming(false);
  if (message.status === "error") statusLine("The reply failed.", "error");
  else if (message.status === "stopped") statusLine("Reply stopped.");
  else statusLine("Reply complete.");
  hooks.onActivity();
}

function requestStop(live) {
  api(`/chat/stop/${encodeURIComponent(live.message.id)}`, { method: "POST" }).catch((error) => {
    if (!(error instanceof SignedOut)) errorLine(`Could not stop the reply: ${error.message}`);
  });
}

function stop() {
  const live = state.live;
  if (!live || live.stopRequested) return;
  live.stopRequested = true;
  statusLine("Stopping…");
  if (live.message.id) requestStop(live);
}
