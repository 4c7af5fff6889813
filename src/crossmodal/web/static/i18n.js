// The page's words in English and Chinese, and the wording of a dog answer's facts.
// The language: the reader's last choice (localStorage), else the browser's (navigator.language).
"use strict";

const STRINGS = {
  en: {
    "lang.label": "Language",
    "search.label": "Search",
    "modes.label": "Search direction",
    "mode.t2i": "Text → Image",
    "mode.t2t": "Text → Text",
    "mode.i2i": "Image → Image",
    "mode.i2t": "Image → Text",
    "hint.t2i": "Score: cosine similarity between your words and each photo.",
    "hint.t2t": "Score: cosine similarity between your words and each caption.",
    "hint.i2i": "Score: cosine similarity between your photo and each photo (1 = the same picture).",
    "hint.i2t": "Score: cosine similarity between your photo and each caption; captions are grouped under their photo.",
    "hint.scales": "Scales differ across modes: compare scores within one mode only.",
    "search.q": "Search text",
    "filter.title": "Filters",
    "filter.after": "Taken from",
    "filter.before": "to",
    "filter.camera": "Camera",
    "filter.cameraPh": "make or model, e.g. Pixel",
    "filter.gps": "GPS",
    "filter.gpsAny": "any",
    "filter.gpsYes": "with a position",
    "filter.gpsNo": "without",
    "filter.folder": "Folder",
    "filter.folderPh": "inside the indexed folders, e.g. 2024/summer",
    "filter.type": "File type",
    "filter.typePh": "jpg,png",
    "filter.minSize": "Size from",
    "filter.maxSize": "to",
    "filter.sizePh": "e.g. 2MB",
    "filter.clear": "Clear filters",
    "filter.active": "({n} on)",
    "search.button": "Search",
    "ph.t2i": "Describe a photo, e.g. a dog running on the beach",
    "ph.t2t": "Find captions, e.g. children playing in the water",
    "ph.image": "Or search by words",
    "drop.label": "Drop an image here or choose a file",
    "drop.text": "Drop a photo here, or",
    "drop.choose": "choose a file",
    "drop.textMode": "A photo searches by image (switches to Image → Image):",
    "preview.alt": "The image you are searching with",
    "preview.clear": "Clear",
    "gen.label": "Generate and search the web",
    "gen.title": "Generate / Web image search",
    "gen.what": "What to generate",
    "gen.ph": "a corgi running on the beach",
    "gen.image": "Image",
    "gen.video": "Video",
    "gen.attach": "animate the uploaded photo (image → video)",
    "gen.web": "Search the web with the photo",
    "gen.needPrompt": "Describe what to generate first.",
    "gen.generating": "Generating the image…",
    "gen.generated": "generated",
    "gen.task": "video task {status} · {seconds} s — generating the video…",
    "gen.taskFailed": "the video task failed",
    "web.needPhoto": "Upload a photo first.",
    "web.searching": "Searching the web…",
    "web.none": "No similar images found.",
    "web.image": "image",
    "keys.missing": "Needs a key (see docs/dogs.md): {names}. Without one the answers come from the knowledge base.",
    "results.label": "Results",
    "results.more": "Load more",
    "results.images": "{shown} of {total} images, best first",
    "results.captions": "{shown} of {total} captions, best first",
    "results.grouped": "{shown} of {total} captions (on {photos} photos), best first",
    "results.noImages": "No images found: the collection holds none yet.",
    "results.noCaptions": "No captions found: the collection holds none yet.",
    "card.title": "Search with this image",
    "notes.summary": "Descriptions",
    "notes.matched": "Matched:",
    "notes.words": "words:",
    "notes.auto": "auto",
    "notes.kind.caption": "caption",
    "notes.kind.annotation": "your note",
    "notes.kind.tag": "tag",
    "notes.kind.auto_caption": "automatic caption",
    "notes.placeholder": "Add a note, e.g. Max at grandma's farm",
    "notes.token": "Server token (crossmodal serve --token)",
    "notes.add": "Add",
    "notes.remove": "Remove this note",
    "notes.none": "No descriptions yet.",
    "notes.readonly": "Read-only: start the server with --token to add notes.",
    "notes.refused": "Refused:",
    "card.image": "image {id}",
    "stats.line": "{images} images · {texts} captions",
    "stats.model": "model: {name}",
    "msg.typeWords": "Type a few words to search for.",
    "msg.dropPhoto": "Drop a photo (or choose one) to search with an image.",
    "msg.tooLarge": "That file is too large: the limit is {mb} MB.",
    "msg.notFile": "Drop an image file (a picture dragged from a web page is not a file).",
    "err.server": "The server refused",
    "err.unreachable": "Cannot reach the server: is `crossmodal serve` still running?",
    "err.status": "The server answered {status}",
    "chat.title": "Ask about dogs",
    "chat.open": "Ask about dogs",
    "chat.close": "Close the chat",
    "chat.hint": "Breeds, care, temperament — ask in English or Chinese. With a photo uploaded, ask “what breed is this?”, then follow up (“does it mind the cold?”). Ask for a picture or a video (“draw a Samoyed”) to generate one.",
    "chat.question": "Your question",
    "chat.ph": "What breed is this?",
    "chat.send": "Send",
    "chat.new": "New conversation",
    "chat.photoNext": "Photo attached to your next question",
    "chat.photoKept": "This conversation is about this photo",
    "chat.photoRemove": "Remove the photo",
    "chat.photoRemoved": "Photo removed: your next question starts a new conversation.",
    "chat.empty": "Type a question first.",
    "chat.provider": "answered by {name}",
    "chat.offered": "a photo of the collection",
    "fact.recognized": "recognised as {breed} ({pct}%)",
    "fact.notDog": "not a dog",
    "fact.dogScore": "dog score {pct}%",
    "fact.years": "{range} years",
    "fact.none": "not in the knowledge base",
  },
  zh: {
    "lang.label": "语言",
    "search.label": "搜索",
    "modes.label": "搜索方向",
    "mode.t2i": "文字 → 图片",
    "mode.t2t": "文字 → 文字",
    "mode.i2i": "图片 → 图片",
    "mode.i2t": "图片 → 文字",
    "hint.t2i": "分数：你的文字与每张照片之间的余弦相似度。",
    "hint.t2t": "分数：你的文字与每条描述之间的余弦相似度。",
    "hint.i2i": "分数：你的照片与每张照片之间的余弦相似度（1 表示同一张图）。",
    "hint.i2t": "分数：你的照片与每条描述之间的余弦相似度；描述按所属照片分组显示。",
    "hint.scales": "不同模式的分数尺度不同，只在同一模式内比较。",
    "search.q": "搜索文字",
    "filter.title": "筛选",
    "filter.after": "拍摄日期从",
    "filter.before": "到",
    "filter.camera": "相机",
    "filter.cameraPh": "品牌或型号",
    "filter.gps": "定位",
    "filter.gpsAny": "不限",
    "filter.gpsYes": "有位置信息",
    "filter.gpsNo": "无位置信息",
    "filter.folder": "文件夹",
    "filter.folderPh": "已索引文件夹内的路径",
    "filter.type": "文件类型",
    "filter.typePh": "例如 jpg,png",
    "filter.minSize": "大小从",
    "filter.maxSize": "到",
    "filter.sizePh": "例如 2MB",
    "filter.clear": "清除筛选",
    "filter.active": "（已启用 {n} 项）",
    "search.button": "搜索",
    "ph.t2i": "描述一张照片，例如：在海滩上奔跑的狗",
    "ph.t2t": "查找描述，例如：在水里玩耍的孩子",
    "ph.image": "也可以用文字搜索",
    "drop.label": "把图片拖到这里，或选择文件",
    "drop.text": "把照片拖到这里，或",
    "drop.choose": "选择文件",
    "drop.textMode": "用照片搜索会切换到 图片 → 图片：",
    "preview.alt": "你用来搜索的图片",
    "preview.clear": "清除",
    "gen.label": "生成与网络搜图",
    "gen.title": "生成 / 网络搜图",
    "gen.what": "要生成什么",
    "gen.ph": "一只在雪地里的萨摩耶",
    "gen.image": "图片",
    "gen.video": "视频",
    "gen.attach": "用上传的照片生成视频（图片 → 视频）",
    "gen.web": "用这张照片在网络上搜图",
    "gen.needPrompt": "请先描述要生成的内容。",
    "gen.generating": "正在生成图片…",
    "gen.generated": "已生成",
    "gen.task": "视频任务 {status} · {seconds} 秒 — 视频生成中…",
    "gen.taskFailed": "视频任务失败",
    "web.needPhoto": "请先上传照片。",
    "web.searching": "正在网络搜图…",
    "web.none": "没有找到相似图片。",
    "web.image": "图片",
    "keys.missing": "需要密钥（见 docs/dogs.md）：{names}。未配置时由知识库回答。",
    "results.label": "结果",
    "results.more": "加载更多",
    "results.images": "共 {total} 张图片，显示最相似的 {shown} 张",
    "results.captions": "共 {total} 条描述，显示最相似的 {shown} 条",
    "results.grouped": "共 {total} 条描述，显示最相似的 {shown} 条（来自 {photos} 张照片）",
    "results.noImages": "没有找到图片：图库里还没有图片。",
    "results.noCaptions": "没有找到描述：图库里还没有描述。",
    "card.title": "用这张图片搜索",
    "notes.summary": "描述与注释",
    "notes.matched": "匹配：",
    "notes.words": "词：",
    "notes.auto": "自动",
    "notes.kind.caption": "描述",
    "notes.kind.annotation": "你的注释",
    "notes.kind.tag": "标签",
    "notes.kind.auto_caption": "自动描述",
    "notes.placeholder": "添加注释，例如：在奶奶家的农场",
    "notes.token": "服务器令牌（启动服务时设定）",
    "notes.add": "添加",
    "notes.remove": "删除这条注释",
    "notes.none": "还没有描述。",
    "notes.readonly": "只读：启动服务时设定令牌才能添加注释。",
    "notes.refused": "被拒绝：",
    "card.image": "图片 {id}",
    "stats.line": "{images} 张图片 · {texts} 条描述",
    "stats.model": "模型：{name}",
    "msg.typeWords": "请输入要搜索的文字。",
    "msg.dropPhoto": "拖入（或选择）一张照片来以图搜索。",
    "msg.tooLarge": "文件太大：上限是 {mb} MB。",
    "msg.notFile": "请拖入图片文件（从网页拖来的图片不是文件）。",
    "err.server": "服务器拒绝了请求",
    "err.unreachable": "无法连接服务器：`crossmodal serve` 还在运行吗？",
    "err.status": "服务器返回 {status}",
    "chat.title": "问问狗狗的事",
    "chat.open": "问问狗狗的事",
    "chat.close": "关闭对话",
    "chat.hint": "品种、护理、性格——用中文或英文提问。上传照片后问“这是什么品种？”，再接着问（“它怕冷吗？”）。想要图片或视频就说（“画一只萨摩耶”）。",
    "chat.question": "你的问题",
    "chat.ph": "这是什么品种？",
    "chat.send": "发送",
    "chat.new": "新对话",
    "chat.photoNext": "照片将随下一个问题发送",
    "chat.photoKept": "本次对话关于这张照片",
    "chat.photoRemove": "移除照片",
    "chat.photoRemoved": "照片已移除：下一个问题将开始新对话。",
    "chat.empty": "请先输入问题。",
    "chat.provider": "回答来自 {name}",
    "chat.offered": "图库中的照片",
    "fact.recognized": "识别为{breed}（{pct}%）",
    "fact.notDog": "不是狗",
    "fact.dogScore": "是狗的可能性 {pct}%",
    "fact.years": "{range}年",
    "fact.none": "知识库中无此信息",
  },
};

const LANGS = Object.keys(STRINGS);
const LANG_KEY = "crossmodal.lang";

function initialLang() {
  let saved = null;
  try {
    saved = localStorage.getItem(LANG_KEY);
  } catch (err) {
    saved = null; // storage disabled: fall back to the browser's language
  }
  if (LANGS.includes(saved)) return saved;
  const browser = String(navigator.language || "en").toLowerCase();
  return browser.startsWith("zh") ? "zh" : "en";
}

const i18n = { lang: initialLang(), onChange: [] };

// t("results.images", {shown: 5, total: 40}): the string in the current language
function t(key, vars = {}) {
  const text = STRINGS[i18n.lang][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

function formatCount(n) {
  return Number(n).toLocaleString(i18n.lang === "zh" ? "zh-CN" : "en-US");
}

// the page's fixed texts, from their data-i18n* attributes
function applyStaticText(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  const attributes = { i18nPlaceholder: "placeholder", i18nAriaLabel: "aria-label",
    i18nTitle: "title", i18nAlt: "alt" };
  for (const [data, attribute] of Object.entries(attributes)) {
    const selector = `[data-${data.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}]`;
    for (const el of root.querySelectorAll(selector)) el.setAttribute(attribute, t(el.dataset[data]));
  }
}

function setLang(lang, remember = true) {
  if (!LANGS.includes(lang)) return;
  i18n.lang = lang;
  if (remember) {
    try {
      localStorage.setItem(LANG_KEY, lang);
    } catch (err) {
      // storage disabled: the choice lasts until the page is reloaded
    }
  }
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const button of document.querySelectorAll("#lang-switch button")) {
    button.setAttribute("aria-checked", String(button.dataset.lang === lang));
  }
  applyStaticText();
  for (const callback of i18n.onChange) callback(lang);
}

// ---- a dog answer's facts, worded -------------------------------------------------------------
// labels: GET /api/dogs/labels ({breeds, fields, values, groups, health}: key -> {en, zh})
const SUITABILITY_EN = { good: "good", ok: "OK", poor: "poor" };
const SUITABILITY_PHRASE_EN = {
  children: "with children",
  apartment: "in an apartment",
  first_time_owner: "for first-time owners",
  cats: "with cats",
  other_dogs: "with other dogs",
};

function named(table, key) {
  const entry = table && table[key];
  return entry ? entry[i18n.lang] || entry.en : key;
}

function percent(value) {
  return Math.round(Number(value) * 100);
}

function factValue(fact, labels) {
  const v = fact.value;
  const zh = i18n.lang === "zh";
  const join = (items) => items.join(zh ? "、" : ", ");
  if (v === null || v === undefined || (Array.isArray(v) && !v.length)) return t("fact.none");
  if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "number")) {
    const range = v[0] === v[1] ? `${v[0]}` : `${v[0]}–${v[1]}`;
    if (fact.field === "weight_kg") return zh ? `${range}公斤` : `${range} kg`;
    if (fact.field === "height_cm") return zh ? `${range}厘米` : `${range} cm`;
    if (fact.field === "lifespan_years") return t("fact.years", { range });
  }
  if (fact.field === "health" && Array.isArray(v)) return join(v.map((c) => named(labels.health, c)));
  if (Array.isArray(v)) return join(v.map(String));
  if (typeof v === "boolean") return zh ? (v ? "是" : "否") : v ? "yes" : "no";
  if (fact.field === "group") return named(labels.groups, String(v));
  const text = labels.values && labels.values[v] ? named(labels.values, String(v)) : String(v);
  return text.length > 48 ? text.slice(0, 47) + "…" : text; // a description is in the answer
}

// "Golden Retriever · good with children" / "金毛寻回犬 · 与孩子相处：好"
function factLabel(fact, labels) {
  const breed = fact.breed ? named(labels.breeds, fact.breed) : "";
  const zh = i18n.lang === "zh";
  if (fact.field === "recognized") return t("fact.recognized", { breed, pct: percent(fact.value) });
  if (fact.field === "is_dog") return fact.value ? named(labels.fields, "is_dog") : t("fact.notDog");
  if (fact.field === "dog_score") return t("fact.dogScore", { pct: percent(fact.value) });
  let detail;
  if (!zh && fact.field in SUITABILITY_PHRASE_EN && fact.value in SUITABILITY_EN) {
    detail = `${SUITABILITY_EN[fact.value]} ${SUITABILITY_PHRASE_EN[fact.field]}`;
  } else {
    const field = named(labels.fields, fact.field);
    detail = `${field}${zh ? "：" : ": "}${factValue(fact, labels)}`;
  }
  return breed ? `${breed} · ${detail}` : detail;
}
