// The sidebar: the user's chat sessions, newest first (GET /sessions), a title filter, rename
// (PUT /sessions/{id}) and delete with a confirmation (DELETE /sessions/{id}).

import { api, SignedOut } from "./api.js";
import { $, announce, clear, confirmDialog, h } from "./dom.js";

let sessions = [];
let activeId = null;
let hooks = { onSelect: () => {}, onDeleted: () => {}, onError: () => {} };

const list = () => $("#session-list");

export function initSessions(handlers) {
  hooks = { ...hooks, ...handlers };
  $("#session-search").addEventListener("input", render);
}

export function titleOf(id) {
  const session = sessions.find((s) => s.id === id);
  return session ? session.title : null;
}

export function setActive(id) {
  activeId = id;
  for (const item of list().children) {
    const current = item.dataset.sessionId === id;
    item.classList.toggle("active", current);
    const open = item.querySelector(".session-open");
    if (open) {
      if (current) open.setAttribute("aria-current", "page");
      else open.removeAttribute("aria-current");
    }
  }
}

export async function loadSessions() {
  try {
    sessions = await api("/sessions");
  } catch (error) {
    if (!(error instanceof SignedOut)) hooks.onError(`Could not load your chats: ${error.message}`);
    return;
  }
  render();
}

export function resetSessions() {
  sessions = [];
  activeId = null;
  $("#session-search").value = "";
  clear(list());
}

function render() {
  const query = $("#session-search").value.trim().toLowerCase();
  const shown = query ? sessions.filter((s) => s.title.toLowerCase().includes(query)) : sessions;
  clear(list());
  for (const session of shown) list().append(item(session));
  const empty = $("#sessions-empty");
  empty.textContent = query ? "No chat matches that title." : "No chats yet.";
  empty.hidden = shown.length > 0;
  setActive(activeId);
}

function item(session) {
  const open = h("button", {
    type: "button",
    class: "session-open",
    title: session.title,
    onclick: () => hooks.onSelect(session.id),
  }, session.title);
  const rename = h("button", {
    type: "button",
    class: "icon small",
    "aria-label": `Rename chat “${session.title}”`,
    title: "Rename",
    onclick: () => startRename(node, session),
  }, "\u270E");
  const remove = h("button", {
    type: "button",
    class: "icon small",
    "aria-label": `Delete chat “${session.title}”`,
    title: "Delete",
    onclick: () => deleteSession(session),
  }, "\u2715");
  const node = h("li", { class: "session", "data-session-id": session.id }, open, rename, remove);
  return node;
}

function startRename(node, session) {
  const input = h("input", {
    type: "text",
    class: "rename-input",
    value: session.title,
    maxlength: "200",
    "aria-label": `New title for chat “${session.title}”`,
  });
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (save && title && title !== session.title) {
      try {
        const updated = await api(`/sessions/${encodeURIComponent(session.id)}`, {
          method: "PUT",
          body: { title },
        });
        Object.assign(session, updated);
        if (session.id === activeId) hooks.onRenamed?.(session);
      } catch (error) {
        if (!(error instanceof SignedOut)) hooks.onError(`Could not rename the chat: ${error.message}`);
      }
    }
    render();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
  clear(node);
  node.append(input);
  input.focus();
  input.select();
}

async function deleteSession(session) {
  const sure = await confirmDialog(
    `Delete the chat “${session.title}” and all of its messages? This cannot be undone.`,
    "Delete chat",
  );
  if (!sure) return;
  try {
    await api(`/sessions/${encodeURIComponent(session.id)}`, { method: "DELETE" });
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (error.status !== 404) {
      hooks.onError(`Could not delete the chat: ${error.message}`);
      return;
    }
  }
  sessions = sessions.filter((s) => s.id !== session.id);
  render();
  announce($("#chat-status"), `Deleted “${session.title}”.`);
  hooks.onDeleted(session.id);
}
