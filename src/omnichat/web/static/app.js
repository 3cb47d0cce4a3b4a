// OmniChat's web UI: the entry module. Sign-in and registration, then the chat screen (sidebar,
// conversation, documents panel), all through the public HTTP API (docs/api.md).

import * as client from "./api.js";
import { $, announce, show } from "./dom.js";
import { currentSessionId, initChat, newChat, showSession } from "./chat.js";
import { initDocuments, resetDocuments } from "./documents.js";
import { initSessions, loadSessions, resetSessions, setActive, titleOf } from "./sessions.js";

const MODEL_KEY = "omnichat.model";
const DOCS_KEY = "omnichat.useDocuments";
const NARROW = window.matchMedia("(max-width: 760px)");

// -- sign-in screen ----------------------------------------------------------------------------

function showAuth(notice = "") {
  show($("#app-view"), false);
  show($("#auth-view"), true);
  resetApp();
  announce($("#auth-notice"), notice, "warning");
  announce($("#auth-error"), "");
  showForm("login");
}

function showForm(which) {
  show($("#login-form"), which === "login");
  show($("#register-form"), which === "register");
  announce($("#auth-error"), "");
  $(which === "login" ? "#login-email" : "#register-email").focus();
}

function bindAuthForms() {
  $("#show-register").addEventListener("click", () => showForm("register"));
  $("#show-login").addEventListener("click", () => showForm("login"));
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitAuth(event.target, () => client.signIn($("#login-email").value.trim(), $("#login-password").value));
  });
  $("#register-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submitAuth(event.target, () => client.register(
      $("#register-email").value.trim(),
      $("#register-password").value,
      $("#register-first").value.trim(),
      $("#register-last").value.trim(),
    ));
  });
}

async function submitAuth(form, action) {
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  announce($("#auth-error"), "");
  try {
    await action();
    form.reset();
    await enterApp();
  } catch (error) {
    let text = error.message;
    if (error.status === 429 && error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
    if (!(error instanceof client.ApiError)) text = "Could not reach the server.";
    announce($("#auth-error"), text, "error");
  } finally {
    button.disabled = false;
  }
}

// -- the chat screen ---------------------------------------------------------------------------

async function enterApp() {
  let me;
  try {
    me = await client.api("/auth/me");
  } catch (error) {
    if (!(error instanceof client.SignedOut)) showAuth(`Could not load your account: ${error.message}`);
    return;
  }
  show($("#auth-view"), false);
  show($("#app-view"), true);
  announce($("#auth-notice"), "");
  $("#user-email").textContent = me.email;
  $("#use-docs").checked = localStorage.getItem(DOCS_KEY) === "true";
  await Promise.all([loadModels(), loadSessions()]);
  route();
  if (!NARROW.matches) $("#prompt").focus(); // on a phone, no keyboard popping up unasked
}

function resetApp() {
  newChat();
  resetSessions();
  resetDocuments();
  setSidebar(false);
  $("#user-email").textContent = "";
  document.title = "OmniChat";
}

async function loadModels() {
  const select = $("#model-select");
  let listing;
  try {
    listing = await client.api("/models");
  } catch (error) {
    if (!(error instanceof client.SignedOut)) announce($("#chat-error"), `Could not load the models: ${error.message}`, "error");
    return;
  }
  const saved = localStorage.getItem(MODEL_KEY);
  select.replaceChildren(...listing.models.map((model) => {
    const option = new Option(model.default ? `${model.id} (default)` : model.id, model.id);
    option.selected = saved ? model.id === saved : model.default;
    return option;
  }));
  if (!listing.models.some((m) => m.id === saved)) select.value = listing.default;
  show($("#offline-banner"), Boolean(listing.offline));
}

function setTitle(id) {
  const title = (id && titleOf(id)) || "New chat";
  $("#chat-title").textContent = title;
  document.title = `${title} · OmniChat`;
}

// The open chat lives in the URL (#/c/<id>), so a reload or a bookmark comes back to it.
function route() {
  const match = /^#\/c\/([\w-]{1,64})$/.exec(location.hash);
  const id = match ? match[1] : null;
  if (id === currentSessionId() && id !== null) return;
  setActive(id);
  setTitle(id);
  if (id) showSession(id);
  else newChat();
}

function openSession(id) {
  setSidebar(false);
  if (id === null) {
    if (location.hash) history.pushState(null, "", location.pathname);
    route();
  } else if (location.hash !== `#/c/${id}`) {
    location.hash = `#/c/${id}`; // hashchange → route()
  } else {
    showSession(id);
  }
}

function setSidebar(open) {
  const narrow = NARROW.matches;
  $("#sidebar").classList.toggle("open", open && narrow);
  show($("#backdrop"), open && narrow);
  $("#toggle-sidebar").setAttribute("aria-expanded", String(open && narrow));
  if (open && narrow) $("#new-chat").focus();
}

function bindAppControls() {
  $("#new-chat").addEventListener("click", () => openSession(null));
  $("#toggle-sidebar").addEventListener("click", () => setSidebar(!$("#sidebar").classList.contains("open")));
  $("#close-sidebar").addEventListener("click", () => setSidebar(false));
  $("#backdrop").addEventListener("click", () => setSidebar(false));
  $("#sidebar").addEventListener("keydown", (event) => {
    if (event.key === "Escape") setSidebar(false);
  });
  NARROW.addEventListener("change", () => setSidebar(false));
  $("#model-select").addEventListener("change", (event) => localStorage.setItem(MODEL_KEY, event.target.value));
  $("#use-docs").addEventListener("change", (event) => localStorage.setItem(DOCS_KEY, String(event.target.checked)));
  $("#sign-out").addEventListener("click", async () => {
    await client.signOut();
    history.replaceState(null, "", location.pathname);
    showAuth("You have signed out.");
  });
  window.addEventListener("hashchange", () => {
    if (client.isSignedIn()) route();
  });
}

function boot() {
  bindAuthForms();
  bindAppControls();
  initChat({
    model: () => $("#model-select").value || null,
    useDocuments: () => $("#use-docs").checked,
    onSession: async (id) => {
      // A new chat got its id from the first event: remember it without reloading the view.
      history.replaceState(null, "", `#/c/${id}`);
      await loadSessions();
      setActive(id);
      setTitle(id);
    },
    onActivity: async () => {
      await loadSessions();
      setActive(currentSessionId());
      setTitle(currentSessionId());
    },
  });
  initSessions({
    onSelect: (id) => openSession(id),
    onDeleted: (id) => {
      if (id === currentSessionId()) openSession(null);
    },
    onRenamed: () => setTitle(currentSessionId()),
    onError: (text) => announce($("#chat-error"), text, "error"),
  });
  initDocuments();
  client.setSignedOutHandler((notice) => showAuth(notice));
  if (client.isSignedIn()) {
    client.start();
    enterApp();
  } else {
    showAuth();
  }
}

boot();
