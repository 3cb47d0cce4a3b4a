// The documents panel: upload with progress (POST /upload/document?background=true, then poll
// GET /documents/{id} until ready or failed), the list (GET /documents), delete, and opening an
// original at a page (fetched with the bearer token, shown from a blob: URL).

import { api, ApiError, authFetch, SignedOut, uploadDocument } from "./api.js";
import { $, announce, clear, confirmDialog, h, show } from "./dom.js";

const POLL_MS = 1000;
const BLOB_LIFETIME_MS = 10 * 60 * 1000;
let documents = [];
const polling = new Set();

export function initDocuments() {
  $("#toggle-docs").addEventListener("click", () => toggleDocuments());
  $("#close-docs").addEventListener("click", () => toggleDocuments(false));
  $("#doc-file").addEventListener("change", async (event) => {
    const input = event.target;
    const files = [...input.files];
    input.value = "";
    for (const file of files) await upload(file);
  });
  $("#docs-panel").addEventListener("keydown", (event) => {
    if (event.key === "Escape") toggleDocuments(false);
  });
}

export function toggleDocuments(open = $("#docs-panel").hidden) {
  show($("#docs-panel"), open);
  $("#toggle-docs").setAttribute("aria-expanded", String(open));
  if (open) {
    loadDocuments();
    $("#doc-file").focus();
  } else {
    $("#toggle-docs").focus();
  }
}

export function resetDocuments() {
  documents = [];
  polling.clear();
  clear($("#doc-list"));
  show($("#docs-panel"), false);
  $("#toggle-docs").setAttribute("aria-expanded", "false");
}

const status = (text, kind = "info") => announce($("#docs-status"), text, kind);

async function loadDocuments() {
  try {
    documents = await api("/documents");
  } catch (error) {
    if (!(error instanceof SignedOut)) status(`Could not load your documents: ${error.message}`, "error");
    return;
  }
  render();
  for (const doc of documents) if (doc.status === "processing") poll(doc.id);
}

function render() {
  const list = $("#doc-list");
  clear(list);
  for (const doc of documents) list.append(item(doc));
  show($("#docs-empty"), documents.length === 0);
}

function describe(doc) {
  if (doc.status === "processing") return "Indexing…";
  if (doc.status === "failed") return `Failed: ${doc.error || "could not be read"}`;
  const pages = doc.pages ? `${doc.pages} page${doc.pages === 1 ? "" : "s"}` : doc.kind.toUpperCase();
  return `Ready · ${pages}`;
}

function item(doc) {
  return h("li", { class: `doc doc-${doc.status}`, "data-document-id": doc.id },
    h("span", { class: "doc-name", title: doc.filename }, doc.filename),
    h("span", { class: "doc-state", "data-status": doc.status }, describe(doc)),
    h("span", { class: "doc-actions" },
      doc.status === "ready"
        ? h("button", {
          type: "button",
          class: "small",
          "aria-label": `Open ${doc.filename}`,
          onclick: () => openDocument(doc.id, 1, doc.filename),
        }, "Open")
        : null,
      h("button", {
        type: "button",
        class: "small danger",
        "aria-label": `Delete ${doc.filename}`,
        onclick: () => deleteDocument(doc),
      }, "Delete")));
}

async function upload(file) {
  const progress = $("#upload-progress");
  const label = $("#upload-label");
  progress.value = 0;
  label.textContent = `Uploading ${file.name}…`;
  show($("#upload-state"), true);
  try {
    const doc = await uploadDocument(file, (fraction) => {
      progress.value = Math.round(fraction * 100);
      label.textContent = `Uploading ${file.name}: ${Math.round(fraction * 100)}%`;
    });
    documents = [doc, ...documents.filter((d) => d.id !== doc.id)];
    render();
    status(`${file.name} uploaded; indexing…`);
    poll(doc.id);
  } catch (error) {
    if (error instanceof SignedOut) return;
    const wait = error instanceof ApiError && error.status === 429 && error.retryAfter
      ? ` Try again in ${error.retryAfter} s.` : "";
    status(`Could not upload ${file.name}: ${error.message}${wait}`, "error");
  } finally {
    show($("#upload-state"), false);
  }
}

async function poll(id) {
  if (polling.has(id)) return;
  polling.add(id);
  try {
    while (polling.has(id)) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      if (!polling.has(id)) break;
      let doc;
      try {
        doc = await api(`/documents/${encodeURIComponent(id)}`);
      } catch (error) {
        if (error instanceof SignedOut || error.status === 404) break;
        continue; // a passing failure: ask again
      }
      documents = documents.map((d) => (d.id === id ? doc : d));
      render();
      if (doc.status !== "processing") {
        status(doc.status === "ready" ? `${doc.filename} is ready.` : `${doc.filename}: ${describe(doc)}`,
          doc.status === "ready" ? "info" : "error");
        break;
      }
    }
  } finally {
    polling.delete(id);
  }
}

async function deleteDocument(doc) {
  const sure = await confirmDialog(
    `Delete “${doc.filename}”? Answers will no longer be grounded in it.`,
    "Delete document",
  );
  if (!sure) return;
  polling.delete(doc.id);
  try {
    await api(`/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
  } catch (error) {
    if (error instanceof SignedOut) return;
    if (error.status !== 404) {
      status(`Could not delete ${doc.filename}: ${error.message}`, "error");
      return;
    }
  }
  documents = documents.filter((d) => d.id !== doc.id);
  render();
  status(`Deleted ${doc.filename}.`);
}

/**
 * Open a document's original at a page. The file needs the bearer token, so it is fetched and
 * shown from a blob: URL (#page=N for PDFs); other kinds are saved under their own name.
 * Called from a click: the tab is opened at once, so no popup blocker stops it.
 */
export async function openDocument(id, page = 1, filename = "document") {
  const tab = window.open("", "_blank");
  if (tab) tab.opener = null;
  try {
    const response = await authFetch(`/documents/${encodeURIComponent(id)}/file?inline=true`);
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      throw new ApiError(response.status, body.detail || response.statusText);
    }
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(url), BLOB_LIFETIME_MS);
    if (blob.type === "application/pdf" || blob.type.startsWith("text/")) {
      const target = blob.type === "application/pdf" ? `${url}#page=${Number(page) || 1}` : url;
      if (tab) tab.location.href = target;
      else h("a", { href: target, target: "_blank", rel: "noopener" }).click();
    } else {
      if (tab) tab.close();
      h("a", { href: url, download: filename }).click();
    }
  } catch (error) {
    if (tab) tab.close();
    if (error instanceof SignedOut) return;
    const message = `Could not open ${filename}: ${error.message}`;
    if ($("#docs-panel").hidden) announce($("#chat-error"), message, "error");
    else status(message, "error");
  }
}
