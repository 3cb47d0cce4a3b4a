// The HTTP client: seed 003 tokens (kept in localStorage, refreshed shortly before the access token
// expires and once more on a 401), JSON calls, the /chat/stream reader and uploads with progress.
// When the refresh token is refused (reused, revoked, expired) the login is over: onSignedOut
// is called with a message for the login screen.

const STORE_KEY = "omnichat.auth";
// One refresh per login across this browser's tabs. Not with Web Locks: they are missing outside
// secure contexts (plain http on a LAN address), and a tab they let in may still read the old
// tokens, as localStorage reaches other tabs asynchronously. A tab claims this short lease in
// localStorage itself, whose writes arrive in order: a tab that sees the lease released also sees
// the tokens stored before. The other tabs wait for those tokens and use them.
const LEASE_KEY = "omnichat.refreshLease";
const LEASE_MS = 10000;
// Two tabs claiming at once: the later write wins once it has reached both.
const CLAIM_SETTLE_MS = 100;
const TAB_ID = crypto.getRandomValues(new Uint32Array(2)).join("-"); // randomUUID needs https
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

let refreshTimer = null;
let refreshing = null;
let onSignedOut = () => {};

// The tokens are read from localStorage at every use, never kept: another tab may have rotated
// them, and presenting a rotated refresh token again revokes the login.
function load() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
    return stored && stored.access_token && stored.refresh_token ? stored : null;
  } catch {
    return null;
  }
}

function save(pair) {
  const tokens = {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    lifetime_s: pair.expires_in,
  };
  localStorage.setItem(STORE_KEY, JSON.stringify(tokens));
  schedule();
  return tokens;
}

function forget() {
  localStorage.removeItem(STORE_KEY);
  clearTimeout(refreshTimer);
}

function refreshDueAt(tokens) {
  return tokens.expires_at - Math.min(REFRESH_MARGIN_S, tokens.lifetime_s / 2) * 1000;
}

function schedule() {
  clearTimeout(refreshTimer);
  const tokens = load();
  if (!tokens) return;
  const due = Math.max(1000, refreshDueAt(tokens) - Date.now());
  refreshTimer = setTimeout(() => refresh(tokens).catch(() => {}), due);
}

// Another tab refreshed or signed out.
window.addEventListener("storage", (event) => {
  if (event.key !== STORE_KEY) return;
  if (load()) schedule();
  else {
    clearTimeout(refreshTimer);
    onSignedOut("You signed out in another tab.");
  }
});

export function setSignedOutHandler(handler) {
  onSignedOut = handler;
}

export function isSignedIn() {
  return load() !== null;
}

export function start() {
  schedule();
}

/** Test hook and debugging aid: the access token now held, if any. */
export function accessToken() {
  return load()?.access_token ?? null;
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

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function liveLease() {
  try {
    const lease = JSON.parse(localStorage.getItem(LEASE_KEY) || "null");
    return lease && lease.until > Date.now() ? lease : null;
  } catch {
    return null;
  }
}

async function claimLease() {
  const held = liveLease();
  if (held && held.owner !== TAB_ID) return false;
  localStorage.setItem(LEASE_KEY, JSON.stringify({ owner: TAB_ID, until: Date.now() + LEASE_MS }));
  await sleep(CLAIM_SETTLE_MS);
  return liveLease()?.owner === TAB_ID;
}

function releaseLease() {
  if (liveLease()?.owner === TAB_ID) localStorage.removeItem(LEASE_KEY);
}

/** Resolves on the next change another tab makes to localStorage, or after ``ms``. */
function storageChange(ms) {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener("storage", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    window.addEventListener("storage", done);
  });
}

/**
 * Newer tokens than ``used`` (the pair that is due or was refused): those another tab stored
 * meanwhile, else a refresh by this tab, else those of the tab that holds the lease.
 */
async function refreshOnce(used) {
  for (;;) {
    const latest = load();
    if (!latest) throw new SignedOut(SIGNED_OUT_MESSAGE);
    if (latest.refresh_token !== used.refresh_token) {
      schedule();
      return latest;
    }
    if (!(await claimLease())) {
      await storageChange(250);
      continue;
    }
    try {
      if (load()?.refresh_token !== used.refresh_token) continue; // stored while claiming
      const response = await post("/auth/refresh", { refresh_token: used.refresh_token });
      if (response.status === 401 || response.status === 422) {
        forget();
        onSignedOut(SIGNED_OUT_MESSAGE);
        throw new SignedOut(SIGNED_OUT_MESSAGE);
      }
      if (!response.ok) throw await parseError(response);
      const pair = await response.json();
      // Signed out (or in again) in another tab meanwhile: that stands.
      if (load()?.refresh_token !== used.refresh_token) continue;
      return save(pair);
    } finally {
      releaseLease();
    }
  }
}

/** One refresh at a time in this tab; resolves to the tokens to use now. */
export function refresh(used) {
  if (!refreshing) {
    refreshing = refreshOnce(used).finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** The stored tokens, refreshed first when due (a background tab's timer may run late). */
async function currentTokens() {
  const tokens = load();
  if (!tokens) throw new SignedOut(SIGNED_OUT_MESSAGE);
  return Date.now() < refreshDueAt(tokens) ? tokens : refresh(tokens);
}

/** fetch() with the bearer token; a 401 refreshes the tokens and tries once more. */
export async function authFetch(path, init = {}) {
  const attempt = (tokens) => fetch(path, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${tokens.access_token}` },
  });
  const used = await currentTokens();
  let response = await attempt(used);
  if (response.status === 401) {
    response = await attempt(await refresh(used));
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
  const held = load();
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

function sendUpload(file, tokens, onProgress) {
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
  let tokens = await currentTokens();
  if (tokens.expires_at - Date.now() < 30000) tokens = await refresh(tokens);
  let xhr = await sendUpload(file, tokens, onProgress);
  if (xhr.status === 401) xhr = await sendUpload(file, await refresh(tokens), onProgress);
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
