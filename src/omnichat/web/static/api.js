// The HTTP client: seed 003 tokens (kept in localStorage, refreshed shortly before the access token
// expires and once more on a 401), JSON calls, the /chat/stream reader and uploads with progress.
// When the refresh token is refused (reused, revoked, expired) the login is over: onSignedOut
// is called with a message for the login screen.

const STORE_KEY = "omnichat.auth";
const LOCK_NAME = "omnichat.refresh";
// Refresh this long before the access token expires (or halfway, for very short lifetimes).
const REFRESH_MARGIN_S = 60;

export const SIGNED_OUT_MESSAGE =
  "Your session has ended (it expired, was signed out elsewhere, or was revoked). Please sign in again.";

export class ApiError extends Error {
  constructor(status, detail, retryAfter = null) {
    super(detail);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

export class SignedOut extends Error {}

let tokens = load();
let refreshTimer = null;
let refreshing = null;
let onSignedOut = () => {};

function load() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    return stored && stored.access_token && stored.refresh_token ? stored : null;
  } catch {
    return null;
  }
}

function save(pair) {
  tokens = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    lifetime_s: pair.expires_in,
  };
  localStorage.setItem(STORE_KEY, JSON.stringify(tokens));
  schedule();
}

function forget() {
  tokens = null;
  localStorage.removeItem(STORE_KEY);
  clearTimeout(refreshTimer);
}

function schedule() {
  clearTimeout(refreshTimer);
  if (!tokens) return;
  const margin = Math.min(REFRESH_MARGIN_S, tokens.lifetime_s / 2) * 1000;
  const due = Math.max(1000, tokens.expires_at - Date.now() - margin);
  refreshTimer = setTimeout(() => refresh().catch(() => {}), due);
}

// Another tab refreshed or signed out: take its tokens (a rotated refresh token must not be
// presented twice, which would revoke the login).
window.addEventListener("storage", (event) => {
  if (event.key !== STORE_KEY) return;
  tokens = load();
  if (tokens) schedule();
  else {
    clearTimeout(refreshTimer);
    onSignedOut("You signed out in another tab.");
  }
});

export function setSignedOutHandler(handler) {
  onSignedOut = handler;
}

export function isSignedIn() {
  return tokens !== null;
}

export function start() {
  if (tokens) schedule();
}

/** Test hook and debugging aid: the access token now held, if any. */
export function accessToken() {
  return tokens ? tokens.access_token : null;
}

async function parseError(response) {
  let detail = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.detail === "string") detail = body.detail;
  } catch {
    // not JSON: keep the status line
  }
  const retry = response.headers.get("Retry-After");
  return new ApiError(response.status, detail, retry === null ? null : Number(retry));
}

async function post(path, body, headers = {}) {
  return fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
}

/** One refresh at a time, across tabs too; ``stale`` is the access token that was refused. */
export function refresh(stale = null) {
  if (!refreshing) {
    const run = async () => {
      const latest = load();
      if (!latest) throw new SignedOut(SIGNED_OUT_MESSAGE);
      if (stale && latest.access_token !== stale) {
        tokens = latest; // another tab already refreshed
        schedule();
        return;
      }
      const response = await post("/auth/refresh", { refresh_token: latest.refresh_token });
      if (response.status === 401 || response.status === 422) {
        forget();
        onSignedOut(SIGNED_OUT_MESSAGE);
        throw new SignedOut(SIGNED_OUT_MESSAGE);
      }
      if (!response.ok) throw await parseError(response);
      save(await response.json());
    };
    const locked = navigator.locks ? navigator.locks.request(LOCK_NAME, run) : run();
    refreshing = locked.finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** fetch() with the bearer token; a 401 refreshes the tokens and tries once more. */
export async function authFetch(path, init = {}) {
  if (!tokens) throw new SignedOut(SIGNED_OUT_MESSAGE);
  if (tokens.expires_at - Date.now() < 5000) await refresh(tokens.access_token);
  const attempt = () => fetch(path, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${tokens.access_token}` },
  });
  const used = tokens.access_token;
  let response = await attempt();
  if (response.status === 401) {
    await refresh(used);
    response = await attempt();
    if (response.status === 401) {
      forget();
      onSignedOut(SIGNED_OUT_MESSAGE);
      throw new SignedOut(SIGNED_OUT_MESSAGE);
    }
  }
  return response;
}

/** A JSON API call: the parsed body (null for 204), or an ApiError. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method };
  if (body !== undefined) {
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await authFetch(path, init);
  if (!response.ok) throw await parseError(response);
  return response.status === 204 ? null : response.json();
}

// -- accounts ----------------------------------------------------------------------------------

export async function signIn(email, password) {
  const response = await post("/auth/login", { email, password });
  if (!response.ok) throw await parseError(response);
  save(await response.json());
}

export async function register(email, password, firstName, lastName) {
  const body = { email, password };
  if (firstName) body.first_name = firstName;
  if (lastName) body.last_name = lastName;
  const response = await post("/auth/register", body);
  if (!response.ok) throw await parseError(response);
  await signIn(email, password);
}

export async function signOut() {
  const held = tokens;
  forget();
  if (!held) return;
  try {
    await post("/auth/logout", { refresh_token: held.refresh_token }, {
      Authorization: `Bearer ${held.access_token}`,
    });
  } catch {
    // offline: the tokens are gone from this browser all the same
  }
}

// -- streaming ---------------------------------------------------------------------------------

/**
 * Read a /chat/stream response (or a re-attach): onEvent(payload) for every JSON ``data:`` event
 * until ``data: [DONE]``. Resolves when the stream ends; an AbortSignal stops reading.
 */
export async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  const handle = (block) => {
    const data = block.split("\n").filter((l) => l.startsWith("data:"))
      .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
    if (!data) return false; // a comment (keep-alive)
    if (data === "[DONE]") return true;
    onEvent(JSON.parse(data));
    return false;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (handle(block)) {
        reader.cancel().catch(() => {});
        return;
      }
    }
  }
  if (buffer.trim()) handle(buffer);
}

export async function openStream(path, { method = "GET", body, signal } = {}) {
  const init = { method, signal, headers: { Accept: "text/event-stream" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await authFetch(path, init);
  if (!response.ok) throw await parseError(response);
  return response;
}

// -- uploads -----------------------------------------------------------------------------------

function sendUpload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/upload/document?background=true");
    xhr.setRequestHeader("Authorization", `Bearer ${tokens.access_token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new ApiError(0, "The upload failed: the server could not be reached."));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
}

/** Upload with progress (0..1); resolves to the document (status "processing"). */
export async function uploadDocument(file, onProgress) {
  if (!tokens) throw new SignedOut(SIGNED_OUT_MESSAGE);
  if (tokens.expires_at - Date.now() < 30000) await refresh(tokens.access_token);
  let xhr = await sendUpload(file, onProgress);
  if (xhr.status === 401) {
    await refresh(tokens.access_token);
    xhr = await sendUpload(file, onProgress);
  }
  if (xhr.status === 401) {
    forget();
    onSignedOut(SIGNED_OUT_MESSAGE);
    throw new SignedOut(SIGNED_OUT_MESSAGE);
  }
  if (xhr.status >= 200 && xhr.status < 300) return xhr.response;
  const detail = xhr.response && typeof xhr.response.detail === "string"
    ? xhr.response.detail : `${xhr.status} ${xhr.statusText}`;
  const retry = xhr.getResponseHeader("Retry-After");
  throw new ApiError(xhr.status, detail, retry === null ? null : Number(retry));
}
