// The page: one search at a time, described by `state.query`; every call goes to /api and
// every refusal is shown in #message (the server's {"detail": ...} text, as it wrote it).
"use strict";

// results per request: four rows of six on a desktop, twelve rows on a phone (?k=N changes it)
const PAGE = Math.min(100, Math.max(1, Number(new URLSearchParams(location.search).get("k")) || 24));
const THUMB = 320; // thumbnail pixels: a phone card is ~170 CSS px at 2x

const $ = (id) => document.getElementById(id);

const state = {
  mode: "t2i",
  file: null, // the uploaded File (image modes, and the chat's photo)
  fileUrl: null,
  byId: null, // {id, thumbnail}: searching by an indexed image (a clicked card)
  query: null, // what the shown results answer: {kind: "text"|"file"|"id", mode, ...}
  nextOffset: null,
  busy: false,
  rerun: false, // a new search was asked for while one was running: run it when that ends
  maxUpload: 10 * 1024 * 1024,
};

// ---- small helpers ---------------------------------------------------------------------
function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = "message" + (kind === "error" ? " error" : "");
  box.hidden = !text;
}

function clearMessage() {
  showMessage("", "info");
}

async function api(url, options = {}) {
  let response;
  try {
    response = await fetch(url, options);
  } catch (err) {
    throw new Error("Cannot reach the server: is `crossmodal serve` still running?");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const detail = body && typeof body.detail === "string" ? body.detail : response.statusText;
    throw new Error(detail || `The server answered ${response.status}`);
  }
  return body;
}

function isTextMode(mode) {
  return mode === "t2i" || mode === "t2t";
}

function formatCount(n) {
  return Number(n).toLocaleString("en-US");
}

// ---- mode switch -----------------------------------------------------------------------
function setMode(mode) {
  state.mode = mode;
  for (const button of $("modes").querySelectorAll("button")) {
    button.setAttribute("aria-checked", String(button.dataset.mode === mode));
  }
  $("q").placeholder = isTextMode(mode)
    ? mode === "t2i"
      ? "Describe a photo, e.g. a dog running on the beach"
      : "Find captions, e.g. children playing in the water"
    : "Or search by words";
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
    showMessage("Drop a photo (or choose one) to search with an image.", "info");
  }
}

// ---- searches --------------------------------------------------------------------------
function searchText(text) {
  if (!text) {
    showMessage("Type a few words to search for.");
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

async function run(offset) {
  const query = state.query;
  if (!query) return;
  if (state.busy) {
    if (offset === 0) state.rerun = true;
    return;
  }
  state.busy = true;
  $("search-button").disabled = true;
  $("more").disabled = true;
  if (offset === 0) clearMessage();
  try {
    let page;
    if (query.kind === "text") {
      const params = new URLSearchParams({ q: query.text, mode: query.mode, k: PAGE, offset });
      page = await api(`/api/search?${params}`);
    } else if (query.kind === "id") {
      const params = new URLSearchParams({ mode: query.mode, k: PAGE, offset });
      page = await api(`/api/search/by-id/${encodeURIComponent(query.id)}?${params}`);
    } else {
      const form = new FormData();
      form.append("file", query.file, query.file.name || "upload");
      form.append("mode", query.mode);
      form.append("k", String(PAGE));
      form.append("offset", String(offset));
      page = await api("/api/search/image", { method: "POST", body: form });
    }
    render(page, offset > 0);
  } catch (err) {
    if (offset === 0) render(null, false);
    showMessage(err.message);
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
  if (!append) grid.replaceChildren();
  if (!page) {
    $("summary").textContent = "";
    $("more").hidden = true;
    state.nextOffset = null;
    return;
  }
  for (const hit of page.results) grid.append(card(hit));
  const shown = grid.children.length;
  const what = page.mode.endsWith("t") ? "captions" : "images";
  $("summary").textContent = shown
    ? `${formatCount(shown)} of ${formatCount(page.total)} ${what}, best first`
    : `No ${what} found: the collection holds none yet.`;
  state.nextOffset = page.next_offset;
  $("more").hidden = page.next_offset === null || page.next_offset === undefined;
}

function card(hit) {
  const el = document.createElement("button");
  el.type = "button";
  el.className = "card";
  el.dataset.id = String(hit.id);
  el.title = "Search with this image";

  const img = document.createElement("img");
  img.loading = "lazy";
  img.decoding = "async";
  img.src = `${hit.thumbnail}?size=${THUMB}`;
  img.alt = hit.caption || hit.text || `image ${hit.id}`;
  el.append(img);

  const body = document.createElement("div");
  body.className = "card-body";
  const score = document.createElement("span");
  score.className = "card-score";
  score.textContent = Number(hit.score).toFixed(3);
  body.append(score);
  const main = hit.kind === "text" ? hit.text : hit.caption;
  if (main) {
    const text = document.createElement("span");
    text.className = "card-text";
    text.textContent = main;
    body.append(text);
  }
  if (hit.kind === "text" && hit.caption && hit.caption !== hit.text) {
    const caption = document.createElement("span");
    caption.className = "card-caption";
    caption.textContent = hit.caption;
    body.append(caption);
  }
  if (!main) {
    const name = document.createElement("span");
    name.className = "card-caption";
    name.textContent = hit.path.split("/").pop();
    body.append(name);
  }
  el.append(body);
  el.addEventListener("click", () => {
    setById(hit.id, `${hit.thumbnail}?size=${THUMB}`, main || hit.path.split("/").pop());
    searchById(hit.id);
    window.scrollTo({ top: 0, behavior: "smooth" });
  });
  return el;
}

// ---- the image query: an upload or a clicked card ------------------------------------------
function setFile(file) {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = file;
  state.byId = null;
  state.fileUrl = file ? URL.createObjectURL(file) : null;
  showPreview(state.fileUrl, file ? file.name || "pasted image" : "");
  $("attach-row").hidden = !file;
}

function setById(id, url, label) {
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = null;
  state.fileUrl = null;
  state.byId = { id, url };
  showPreview(url, label);
  $("attach-row").hidden = true;
}

function showPreview(url, name) {
  $("preview").hidden = !url;
  $("dropzone-empty").hidden = Boolean(url);
  const img = $("preview-img");
  if (url) {
    img.hidden = false;
    img.src = url;
  } else {
    img.removeAttribute("src");
  }
  $("preview-name").textContent = name || "";
}

function takeFile(file) {
  if (!file) return;
  if (file.size > state.maxUpload) {
    const mb = (state.maxUpload / (1024 * 1024)).toFixed(1);
    showMessage(`That file is too large: the limit is ${mb} MB.`);
    return;
  }
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
      showMessage("Drop an image file (a picture dragged from a web page is not a file).");
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
    showPreview(null, "");
  });
  $("preview-img").addEventListener("error", () => {
    $("preview-img").hidden = true; // not an image the browser can show: the server says why
  });
}

// ---- chat ------------------------------------------------------------------------------
function bubble(kind, text, extra) {
  const el = document.createElement("div");
  el.className = `bubble ${kind}`;
  if (extra) el.append(extra);
  el.append(document.createTextNode(text));
  $("chat-log").append(el);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return el;
}

function factsList(facts) {
  const list = document.createElement("ul");
  list.className = "facts";
  for (const fact of facts) {
    const item = document.createElement("li");
    let value = Array.isArray(fact.value) ? fact.value.join("–") : String(fact.value);
    if (value.length > 48) value = value.slice(0, 47) + "…"; // a description is in the text
    item.textContent = [fact.breed, fact.field, value].filter(Boolean).join(" · ");
    list.append(item);
  }
  return list;
}

const chat = { sessionId: null, sentPhoto: null };

async function ask(event) {
  event.preventDefault();
  const input = $("question");
  const message = input.value.trim();
  if (!message) {
    bubble("bot error", "Type a question first. / 请先输入问题。");
    return;
  }
  // the photo goes with the first message about it; the server keeps it for the follow-ups
  const withPhoto = state.file && $("attach").checked && chat.sentPhoto !== state.file;
  let thumb = null;
  if (withPhoto) {
    thumb = document.createElement("img");
    thumb.src = state.fileUrl;
    thumb.alt = "";
  }
  bubble("user", message, thumb);
  input.value = "";
  $("ask-button").disabled = true;
  const pending = bubble("bot", "…");
  try {
    const form = new FormData();
    form.append("message", message);
    if (chat.sessionId) form.append("session_id", chat.sessionId);
    if (withPhoto) form.append("file", state.file, state.file.name || "photo");
    const reply = await api("/api/dogs/chat", { method: "POST", body: form });
    chat.sessionId = reply.session_id || chat.sessionId;
    if (withPhoto) chat.sentPhoto = state.file;
    showReply(pending, reply);
  } catch (err) {
    pending.textContent = err.message;
    pending.classList.add("error");
    showMessage(err.message);
  } finally {
    $("ask-button").disabled = false;
  }
}

function showReply(el, reply) {
  el.textContent = reply.text;
  el.classList.add("answer");
  if (reply.provider) {
    const tag = document.createElement("span");
    tag.className = "provider";
    tag.textContent = reply.provider;
    el.prepend(tag);
  }
  if (reply.facts && reply.facts.length) el.append(factsList(reply.facts));
  if (reply.card) el.append(mediaCard(reply.card));
  if (reply.photos && reply.photos.length) {
    const grid = document.createElement("div");
    grid.className = "offer";
    for (const photo of reply.photos) grid.append(offerCard(photo));
    el.append(grid);
  }
  if (reply.task) {
    const holder = document.createElement("div");
    el.append(holder);
    followTask(reply.task, holder);
  }
}

function offerCard(photo) {
  const fig = document.createElement("figure");
  fig.className = "media-card offered";
  const img = document.createElement("img");
  img.src = `${photo.thumbnail}?size=${THUMB}`;
  img.alt = photo.caption || "a photo of the collection";
  const cap = document.createElement("figcaption");
  cap.textContent = photo.label;
  fig.append(img, cap);
  return fig;
}

// ---- generation and web search ---------------------------------------------------------
function mediaCard(item) {
  const fig = document.createElement("figure");
  fig.className = "media-card";
  fig.dataset.kind = item.kind;
  let media;
  if (item.kind === "video") {
    media = document.createElement("video");
    media.controls = true;
    media.preload = "metadata";
    media.src = item.url;
  } else {
    media = document.createElement("img");
    media.src = item.url;
    media.alt = item.prompt;
  }
  const cap = document.createElement("figcaption");
  cap.textContent = `${item.prompt} — ${item.label || "generated"} (${item.provider} ${item.model})`;
  fig.append(media, cap);
  return fig;
}

function progressCard(task) {
  const fig = document.createElement("figure");
  fig.className = "media-card pending";
  const bar = document.createElement("progress");
  const cap = document.createElement("figcaption");
  cap.className = "task-status";
  fig.append(bar, cap);
  const update = (t) => {
    cap.textContent = `video task ${t.status} · ${Math.round(t.elapsed)} s — 视频生成中…`;
  };
  update(task);
  return { fig, update };
}

async function followTask(task, holder) {
  const view = progressCard(task);
  holder.append(view.fig);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let now;
    try {
      now = await api(`/api/generate/tasks/${task.id}`);
    } catch (err) {
      view.fig.replaceWith(errorLine(err.message));
      return;
    }
    if (now.status === "success") {
      view.fig.replaceWith(mediaCard(now.result));
      return;
    }
    if (now.status === "failed") {
      view.fig.replaceWith(errorLine(now.error || "the video task failed"));
      return;
    }
    view.update(now);
  }
}

function errorLine(text) {
  const p = document.createElement("p");
  p.className = "message error";
  p.textContent = text;
  return p;
}

async function generate(kind) {
  const prompt = $("gen-prompt").value.trim();
  if (!prompt) {
    showMessage("Describe what to generate first. / 请先描述要生成的内容。");
    return;
  }
  clearMessage();
  const holder = document.createElement("div");
  holder.className = "gen-item";
  $("gen-results").prepend(holder);
  try {
    if (kind === "image") {
      holder.textContent = "generating the image… / 正在生成图片…";
      const item = await api("/api/generate/image", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ prompt }),
      });
      holder.textContent = "";
      holder.append(mediaCard(item));
    } else {
      const form = new FormData();
      form.append("prompt", prompt);
      if ($("gen-attach").checked && state.file) form.append("file", state.file, state.file.name);
      const task = await api("/api/generate/video", { method: "POST", body: form });
      await followTask(task, holder);
    }
  } catch (err) {
    holder.replaceWith(errorLine(err.message));
  }
}

async function searchWeb() {
  if (!state.file) {
    showMessage("Upload a photo above first. / 请先在上方上传照片。");
    return;
  }
  clearMessage();
  const holder = document.createElement("div");
  holder.className = "gen-item";
  holder.textContent = "searching the web… / 正在网络搜图…";
  $("gen-results").prepend(holder);
  try {
    const form = new FormData();
    form.append("file", state.file, state.file.name || "photo");
    const result = await api("/api/web-search", { method: "POST", body: form });
    holder.textContent = "";
    if (!result.hits.length) holder.textContent = "no similar images found / 没有找到相似图片";
    for (const hit of result.hits) {
      const link = document.createElement("a");
      link.className = "web-hit";
      link.href = hit.url || "#";
      link.rel = "noreferrer noopener";
      link.target = "_blank";
      link.textContent = `${Number(hit.score).toFixed(2)} · ${hit.title || hit.url || "image"}`;
      holder.append(link);
    }
  } catch (err) {
    holder.replaceWith(errorLine(err.message));
  }
}

function showKeys(providers) {
  const missing = Object.entries(providers || {})
    .filter(([name, on]) => !on && name !== "vision")
    .map(([name]) => name);
  const text = missing.length
    ? `Needs a key (see docs/dogs.md) / 需要密钥：${missing.join(", ")}. ` +
      "Without one the answers come from the knowledge base. / 未配置时由知识库回答。"
    : "";
  for (const id of ["keys", "chat-keys"]) {
    $(id).textContent = text;
    $(id).hidden = !text;
  }
}

// ---- start -------------------------------------------------------------------------------
async function loadStats() {
  try {
    const stats = await api("/api/stats");
    const caps = stats.capabilities || {};
    state.maxUpload = caps.max_upload_bytes || state.maxUpload;
    $("chat").hidden = !caps.dogs;
    showKeys(caps.providers);
    const parts = [`${formatCount(stats.images)} images`, `${formatCount(stats.texts)} captions`];
    if (stats.model) parts.push(`model: ${String(stats.model).split("/").pop()}`);
    $("stats").textContent = parts.join(" · ");
  } catch (err) {
    showMessage(err.message);
  }
}

function start() {
  $("modes").addEventListener("click", onModeClick);
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    searchText($("q").value.trim());
  });
  $("more").addEventListener("click", () => run(state.nextOffset || 0));
  $("chat-form").addEventListener("submit", ask);
  $("new-chat").addEventListener("click", () => {
    chat.sessionId = null;
    chat.sentPhoto = null;
    $("chat-log").textContent = "";
  });
  $("gen-form").addEventListener("submit", (event) => {
    event.preventDefault();
    generate("image");
  });
  $("gen-video").addEventListener("click", () => generate("video"));
  $("web-search").addEventListener("click", searchWeb);
  setupDropzone();
  setMode("t2i");
  loadStats();
}

start();
