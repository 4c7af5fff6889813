// The page: one search at a time, described by `state.query`; every call goes to /api and
// every refusal is shown in #message (the server's {"detail": ...} text after a translated
// prefix). Words come from i18n.js (t); the chat, generation and web search from chat.js.
"use strict";

// results per request: four rows of six on a desktop, twelve rows on a phone (?k=N changes it)
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("k")) || 24));
const THUMB = 320; // thumbnail pixels: a phone card is ~170 CSS px at 2x

const $ = (id) => document.getElementById(id);

const state = {
  mode: "t2i",
  file: null, // the uploaded File (image modes, and the chat's photo)
  fileUrl: null,
  byId: null, // {id, url, label}: searching by an indexed image (a clicked card)
  query: null, // what the shown results answer: {kind: "text"|"file"|"id", mode, ...}
  nextOffset: null,
  shown: 0, // results shown (i2t: captions, grouped on fewer cards)
  summary: null, // () => the results line, in the current language
  message: null, // {text: () => string, kind}
  stats: null,
  busy: false,
  rerun: false, // a new search was asked for while one was running: run it when that ends
  maxUpload: 10 * 1024 * 1024,
};

// ---- small helpers ---------------------------------------------------------------------
// `text`: a function giving the words in the current language (re-run on a language switch)
function showMessage(text, kind = "error") {
  state.message = text ? { text: typeof text === "function" ? text : () => text, kind } : null;
  drawMessage();
}

function drawMessage() {
  const box = $("message");
  const message = state.message;
  box.textContent = message ? message.text() : "";
  box.className = "message" + (message && message.kind === "error" ? " error" : "");
  box.hidden = !message;
}

function clearMessage() {
  showMessage(null);
}

// An Error whose message follows the language: `words()` gives it.
class PageError extends Error {
  constructor(words) {
    super(words());
    this.words = words;
  }
}

function errorWords(err) {
  return err instanceof PageError ? err.words : () => err.message;
}

async function api(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new PageError(() => t("err.unreachable"));
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    // the server's reason is shown as it wrote it (it may be English), after our own prefix
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    const status = response.status;
    throw new PageError(() => `${t("err.server")}: ${detail || t("err.status", { status })}`);
  }
  return body;
}

function isTextMode(mode) {
  return mode === "t2i" || mode === "t2t";
}

// ---- mode switch -----------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  for (const button of $("modes").querySelectorAll("button")) {
    button.setAttribute("aria-checked", String(button.dataset.mode === mode));
  }
  drawMode();
}

// the inputs that do not apply to the mode are dimmed; text modes show no uploaded photo
function drawMode() {
  const mode = state.mode;
  const text = isTextMode(mode);
  $("q").dataset.i18nPlaceholder = text ? `ph.${mode}` : "ph.image";
  $("q").placeholder = t($("q").dataset.i18nPlaceholder);
  $("search-form").classList.toggle("inactive", !text);
  $("dropzone").classList.toggle("inactive", text);
  $("mode-hint").textContent = `${t(`hint.${mode}`)} ${t("hint.scales")}`;
  const photo = state.fileUrl || (state.byId && state.byId.url);
  showPreview(text ? null : photo, state.file ? state.file.name || "photo" : state.byId && state.byId.label);
  $("drop-text").dataset.i18n = text ? "drop.textMode" : "drop.text";
  $("drop-text").textContent = t($("drop-text").dataset.i18n);
}

function onModeClick(event) {
  const button = event.target.closest("button[data-mode]");
  if (!button) return;
  setMode(button.dataset.mode);
  // re-run the current search in the new direction when there is something to search with
  const text = $("q").value.trim();
  if (isTextMode(state.mode)) {
    if (text) searchText(text);
  } else if (state.file) {
    searchFile(state.file);
  } else if (state.byId) {
    searchById(state.byId.id);
  } else {
    showMessage(() => t("msg.dropPhoto"), "info");
  }
}

// ---- searches --------------------------------------------------------------------------
function searchText(text) {
  if (!text) {
    showMessage(() => t("msg.typeWords"));
    return;
  }
  if (!isTextMode(state.mode)) setMode("t2i");
  state.query = { kind: "text", mode: state.mode, text };
  run(0);
}

function searchFile(file) {
  if (isTextMode(state.mode)) setMode("i2i");
  state.query = { kind: "file", mode: state.mode, file };
  run(0);
}

function searchById(id) {
  if (isTextMode(state.mode)) setMode("i2i");
  state.query = { kind: "id", mode: state.mode, id };
  run(0);
}

// ---- filters: photo facts, sent as query parameters with every search ------------------------
function filterEntries() {
  const entries = [];
  for (const el of $("filter-row").querySelectorAll("input, select")) {
    const value = el.value.trim();
    if (value) entries.push([el.name, value]);
  }
  return entries;
}

function drawFilterCount() {
  const n = filterEntries().length;
  $("filter-count").textContent = n ? t("filter.active", { n }) : "";
}

function setupFilters() {
  const rerun = () => {
    drawFilterCount();
    if (state.query) run(0); // the shown results follow the filters
  };
  $("filter-row").addEventListener("change", rerun);
  $("filter-clear").addEventListener("click", () => {
    for (const el of $("filter-row").querySelectorAll("input, select")) el.value = "";
    rerun();
  });
}

function fetchPage(query, offset) {
  const filters = query.filters || [];
  if (query.kind === "text") {
    const params = new URLSearchParams({ q: query.text, mode: query.mode, k: PAGE, offset });
    for (const [name, value] of filters) params.append(name, value);
    return api(`/api/search?${params}`);
  }
  if (query.kind === "id") {
    const params = new URLSearchParams({ mode: query.mode, k: PAGE, offset });
    for (const [name, value] of filters) params.append(name, value);
    return api(`/api/search/by-id/${encodeURIComponent(query.id)}?${params}`);
  }
  const form = new FormData();
  form.append("file", query.file, query.file.name || "upload");
  form.append("mode", query.mode);
  form.append("k", String(PAGE));
  form.append("offset", String(offset));
  const params = new URLSearchParams(filters);
  return api(`/api/search/image?${params}`, { method: "POST", body: form });
}

async function run(offset) {
  const query = state.query;
  if (!query) return;
  if (state.busy) {
    if (offset === 0) state.rerun = true;
    return;
  }
  state.busy = true;
  if (offset === 0) query.filters = filterEntries(); // "load more" keeps the first page's
  $("search-button").disabled = true;
  $("more").disabled = true;
  if (offset === 0) clearMessage();
  try {
    render(await fetchPage(query, offset), offset > 0);
  } catch (err) {
    if (offset === 0) render(null, false);
    showMessage(errorWords(err));
  } finally {
    state.busy = false;
    $("search-button").disabled = false;
    $("more").disabled = false;
  }
  if (state.rerun) {
    state.rerun = false;
    run(0);
  }
}

// ---- results ---------------------------------------------------------------------------
function render(page, append) {
  const grid = $("results");
  if (!append) {
    grid.replaceChildren();
    state.shown = 0;
  }
  if (!page) {
    state.summary = null;
    drawSummary();
    $("more").hidden = true;
    state.nextOffset = null;
    return;
  }
  for (const hit of page.results) {
    if (page.mode === "i2t") addToGroup(grid, hit);
    else grid.append(card(hit));
  }
  state.shown += page.results.length;
  const vars = { shown: formatCount(state.shown), total: formatCount(page.total) };
  const captions = page.mode.endsWith("t");
  const cards = grid.children.length;
  state.summary = () => {
    if (!state.shown) return t(captions ? "results.noCaptions" : "results.noImages");
    if (page.mode === "i2t") return t("results.grouped", { ...vars, photos: formatCount(cards) });
    return t(captions ? "results.captions" : "results.images", vars);
  };
  drawSummary();
  state.nextOffset = page.next_offset;
  $("more").hidden = page.next_offset === null || page.next_offset === undefined;
}

function drawSummary() {
  $("summary").textContent = state.summary ? state.summary() : "";
}

function span(className, text) {
  const el = document.createElement("span");
  el.className = className;
  el.textContent = text;
  return el;
}

// A card: its photo (a button: search by it; a click anywhere but the notes panel does too),
// then what the result says, then its descriptions panel (notes.js)
function cardShell(hit, label) {
  const el = document.createElement("div");
  el.className = "card";
  el.dataset.id = String(hit.id);
  const photo = document.createElement("button");
  photo.type = "button";
  photo.className = "card-photo";
  photo.dataset.i18nTitle = "card.title";
  photo.title = t("card.title");
  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.src = `${hit.thumbnail}?size=${THUMB}`;
  img.alt = label;
  img.translate = false; // its caption or file name: data
  photo.append(img);
  el.append(photo);
  el.addEventListener("click", (event) => {
    if (event.target.closest(".card-notes")) return; // the notes panel is not a search

    setById(hit.id, `${hit.thumbnail}?size=${THUMB}`, label);
    searchById(hit.id);
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  return el;
}

// t2i, i2i: a photo and its first caption; t2t: the caption found, on its photo
function card(hit) {
  const main = hit.kind === "text" ? hit.text : hit.caption;
  const name = hit.path.split("/").pop();
  const el = cardShell(hit, main || name);
  const body = document.createElement("div");
  body.className = "card-body";
  body.append(span("card-score", Number(hit.score).toFixed(3)));
  const words = span(main ? "card-text" : "card-caption", main || name);
  words.translate = false; // data: shown as it is in either language
  body.append(words);
  if (hit.by_person === false) body.append(labelSpan("note-auto", "notes.auto"));
  if (hit.matched && hit.matched.length) body.append(matchedLines(hit));
  el.append(body, notesPanel(hit.id));
  return el;
}

// i2t: one card per photo, its captions under it (best first), added to as pages come
function addToGroup(grid, hit) {
  let el = grid.querySelector(`.card[data-id="${CSS.escape(String(hit.id))}"]`);
  if (!el) {
    el = cardShell(hit, hit.caption || hit.path.split("/").pop());
    el.classList.add("group");
    const body = document.createElement("div");
    body.className = "card-body";
    el.append(body, notesPanel(hit.id));
    grid.append(el);
  }
  const row = span("caption-row", "");
  const words = span("card-text", hit.text || "");
  words.translate = false;
  row.append(span("card-score", Number(hit.score).toFixed(3)), words);
  if (hit.by_person === false) row.append(labelSpan("note-auto", "notes.auto"));
  el.querySelector(".card-body").append(row);
}

// ---- the image query: an upload or a clicked card ------------------------------------------
function setFile(file) {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = file;
  state.byId = null;
  state.fileUrl = file ? URL.createObjectURL(file) : null;
  drawMode();
  // the chat's chip shows the last photo uploaded, until its own × removes it
  if (file) attachChatPhoto(file);
}

function setById(id, url, label) {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = null;
  state.fileUrl = null;
  state.byId = { id, url, label };
  drawMode();
}

function showPreview(url, name) {
  $("preview").hidden = !url;
  $("dropzone-empty").hidden = Boolean(url);
  const img = $("preview-img");
  if (url) {
    img.hidden = false;
    if (img.getAttribute("src") !== url) img.src = url;
  } else {
    img.removeAttribute("src");
  }
  $("preview-name").textContent = url ? name || "" : "";
}

function takeFile(file) {
  if (!file) return;
  if (file.size > state.maxUpload) {
    const mb = (state.maxUpload / (1024 * 1024)).toFixed(1);
    showMessage(() => t("msg.tooLarge", { mb }));
    return;
  }
  if (isTextMode(state.mode)) setMode("i2i"); // a photo searches by image: show it
  setFile(file);
  searchFile(file);
}

function setupDropzone() {
  const zone = $("dropzone");
  const input = $("file");
  input.addEventListener("change", () => {
    takeFile(input.files && input.files[0]);
    input.value = ""; // choosing the same file again still fires `change`
  });
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "dragend"]) {
    zone.addEventListener(type, () => zone.classList.remove("dragging"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const files = event.dataTransfer && event.dataTransfer.files;
    if (!files || !files.length) {
      showMessage(() => t("msg.notFile"));
      return;
    }
    takeFile(files[0]);
  });
  // a file dropped anywhere else would make the browser leave the page to show it
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (!zone.contains(event.target)) event.preventDefault();
    });
  }
  // pasting a screenshot searches with it too
  window.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData ? event.clipboardData.items : [])].find(
      (i) => i.kind === "file" && i.type.startsWith("image/"),
    );
    if (item) takeFile(item.getAsFile());
  });
  $("clear-image").addEventListener("click", () => {
    setFile(null);
    state.byId = null;
    drawMode();
  });
  $("preview-img").addEventListener("error", () => {
    $("preview-img").hidden = true; // not an image the browser can show: the server says why
  });
}

// ---- start -------------------------------------------------------------------------------
function drawStats() {
  const stats = state.stats;
  if (!stats) return;
  const parts = [t("stats.line", { images: formatCount(stats.images), texts: formatCount(stats.texts) })];
  if (stats.model) parts.push(t("stats.model", { name: String(stats.model).split("/").pop() }));
  $("stats").textContent = parts.join(" · ");
}

async function loadStats() {
  try {
    const stats = await api("/api/stats");
    const caps = stats.capabilities || {};
    state.maxUpload = caps.max_upload_bytes || state.maxUpload;
    notes.canWrite = Boolean(caps.write);
    state.stats = stats;
    drawStats();
    showChat(Boolean(caps.dogs), caps.providers);
  } catch (err) {
    showMessage(errorWords(err));
  }
}

function start() {
  $("lang-switch").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-lang]");
    if (button) setLang(button.dataset.lang);
  });
  i18n.onChange.push(() => {
    drawMode();
    drawSummary();
    drawMessage();
    drawStats();
    drawFilterCount();
    redrawChat();
  });
  $("modes").addEventListener("click", onModeClick);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchText($("q").value.trim());
  });
  $("more").addEventListener("click", () => run(state.nextOffset || 0));
  setupDropzone();
  setupFilters();
  setupChat();
  setMode("t2i");
  setLang(i18n.lang, false);
  loadStats();
}

start();
