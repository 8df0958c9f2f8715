/* honeydesk chat widget. Add it to any page with one tag:
 *   <script src="https://HONEYDESK/widget.js" data-shop="demo" async></script>
 * Optional: data-lang="zh|en" (default: the page's lang, then the browser's), data-user and data-signature (a logged-in
 * shopper's id and its HMAC-SHA256 under the shop's secret, computed on the merchant's server),
 * data-open="true" to start open. Speaks protocol v1 (docs/protocol.md). No dependencies. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src, location.href);
  var shop = script.getAttribute("data-shop") || "demo";
  // The interface speaks the page's language (the merchant's), else the browser's.
  var lang = script.getAttribute("data-lang") || document.documentElement.lang || navigator.language || "zh";
  lang = lang.toLowerCase().indexOf("zh") === 0 ? "zh" : "en";
  var user = script.getAttribute("data-user");
  var signature = script.getAttribute("data-signature");
  var TEXT = {
    zh: { title: "在线客服", placeholder: "输入消息，回车发送", send: "发送", open: "咨询客服",
          connecting: "连接中…", offline: "网络断开，正在重连…", agent: "人工客服", bot: "小蜜",
          rate: "请为本次服务打分", thanks: "感谢您的评价！", queued: "已为您转接人工，请稍候",
          close: "关闭", more: "查看详情" },
    en: { title: "Customer service", placeholder: "Type a message, Enter to send", send: "Send",
          open: "Chat with us", connecting: "Connecting…", offline: "Offline, reconnecting…",
          agent: "Agent", bot: "Assistant", rate: "Please rate this chat",
          thanks: "Thanks for your rating!", queued: "Connecting you with a person, please wait",
          close: "Close", more: "Details" }
  }[lang === "en" ? "en" : "zh"];

  var KEY = "honeydesk:" + shop + (user ? ":" + user : "");
  var saved = {};
  try { saved = JSON.parse(localStorage.getItem(KEY) || "{}"); } catch (e) { saved = {}; }
  // A new page asks for the whole conversation (last_seq 0) so the transcript shows again; a
  // reconnect within the page asks only for what it missed.
  var lastSeq = 0;
  var pending = {};          // client_id -> text, until acked (resent after a reconnect)
  var counter = Date.now();
  var ws = null, retry = 0, typingTimer = null;

  var host = document.createElement("div");
  host.id = "honeydesk-widget";
  document.body.appendChild(host);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  root.innerHTML =
    '<style>' +
    ':host{all:initial}*{box-sizing:border-box;font-family:-apple-system,"PingFang SC","Microsoft YaHei",sans-serif}' +
    '.launcher{position:fixed;right:20px;bottom:20px;z-index:2147483000;border:0;border-radius:24px;padding:12px 18px;background:#ff6a00;color:#fff;font-size:15px;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.2)}' +
    '.panel{position:fixed;right:20px;bottom:20px;z-index:2147483001;width:360px;height:540px;max-height:calc(100vh - 40px);display:none;flex-direction:column;background:#f5f5f5;border-radius:12px;overflow:hidden;box-shadow:0 8px 30px rgba(0,0,0,.25)}' +
    '.panel.open{display:flex}' +
    '@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100vh;max-height:none;border-radius:0}}' +
    '.head{background:#ff6a00;color:#fff;padding:12px 14px;display:flex;justify-content:space-between;align-items:center;font-size:16px}' +
    '.head button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer}' +
    '.status{font-size:12px;color:#888;text-align:center;padding:4px;min-height:20px}' +
    '.log{flex:1;overflow-y:auto;padding:10px}' +
    '.row{display:flex;margin:6px 0}.row.shopper{justify-content:flex-end}' +
    '.bubble{max-width:78%;padding:8px 11px;border-radius:12px;font-size:14px;line-height:1.45;white-space:pre-wrap;word-break:break-word;background:#fff;color:#222}' +
    '.shopper .bubble{background:#ff6a00;color:#fff}.agent .bubble{background:#e8f3ff}' +
    '.who{font-size:11px;color:#999;margin-bottom:2px}' +
    '.chips{display:flex;flex-wrap:wrap;gap:6px;margin:4px 0 8px}' +
    '.chips button{border:1px solid #ff6a00;background:#fff;color:#ff6a00;border-radius:14px;padding:4px 10px;font-size:13px;cursor:pointer}' +
    '.card{display:block;margin-top:6px;padding:6px 8px;border:1px solid #eee;border-radius:8px;color:#1677ff;text-decoration:none;font-size:13px}' +
    '.typing{font-size:12px;color:#999;padding:0 12px;min-height:18px}' +
    '.input{display:flex;border-top:1px solid #ddd;background:#fff}' +
    '.input textarea{flex:1;border:0;padding:10px;font-size:14px;resize:none;height:52px;outline:none}' +
    '.input button{border:0;background:#ff6a00;color:#fff;padding:0 16px;font-size:14px;cursor:pointer}' +
    '.note{text-align:center;font-size:12px;color:#999;margin:6px 0}' +
    '</style>' +
    '<button class="launcher" part="launcher"></button>' +
    '<div class="panel" role="dialog"><div class="head"><span class="title"></span><button class="x" aria-label="close">×</button></div>' +
    '<div class="status"></div><div class="log" aria-live="polite"></div><div class="typing"></div>' +
    '<div class="input"><textarea></textarea><button class="send"></button></div></div>';
  var $ = function (sel) { return root.querySelector(sel); };
  var launcher = $(".launcher"), panel = $(".panel"), log = $(".log"), input = $("textarea");
  launcher.textContent = TEXT.open;
  $(".title").textContent = TEXT.title;
  $(".x").setAttribute("aria-label", TEXT.close);
  $(".send").textContent = TEXT.send;
  input.placeholder = TEXT.placeholder;

  function setStatus(t) { $(".status").textContent = t || ""; }
  function save() {
    try { localStorage.setItem(KEY, JSON.stringify(saved)); } catch (e) { /* private mode */ }
  }
  function scroll() { log.scrollTop = log.scrollHeight; }

  function render(e) {
    if (e.seq <= lastSeq) return;
    var row = document.createElement("div");
    row.className = "row " + e.from;
    row.setAttribute("data-seq", e.seq);
    var box = document.createElement("div");
    if (e.from !== "shopper") {
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = e.from === "agent" ? TEXT.agent : TEXT.bot;
      box.appendChild(who);
    }
    var bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = e.text;
    if (e.link) {
      var card = document.createElement("a");
      card.className = "card";
      card.href = e.link;
      card.target = "_blank";
      card.rel = "noopener";
      card.textContent = TEXT.more + " →";
      bubble.appendChild(card);
    }
    box.appendChild(bubble);
    row.appendChild(box);
    log.appendChild(row);
    if (e.buttons && e.buttons.length) {
      var chips = document.createElement("div");
      chips.className = "chips";
      e.buttons.forEach(function (label) {
        var b = document.createElement("button");
        b.textContent = e.rating_for ? "★ " + label : label;
        b.onclick = function () {
          if (e.rating_for) {
            ws && ws.readyState === 1 && ws.send(JSON.stringify({ type: "rating", seq: e.seq, score: Number(label) }));
            chips.remove();
          } else {
            sendText(label);
          }
        };
        chips.appendChild(b);
      });
      log.appendChild(chips);
    }
    if (e.handoff) note(TEXT.queued);
    lastSeq = e.seq;
    scroll();
  }
  function note(t) {
    var n = document.createElement("div");
    n.className = "note";
    n.textContent = t;
    log.appendChild(n);
    scroll();
  }
  function showTyping(on) {
    $(".typing").textContent = on ? "…" : "";
    clearTimeout(typingTimer);
    if (on) typingTimer = setTimeout(function () { $(".typing").textContent = ""; }, 6000);
  }

  function sendText(text) {
    text = text.trim();
    if (!text) return;
    var id = "w" + (counter++).toString(36);
    pending[id] = text;
    if (ws && ws.readyState === 1) ws.send(JSON.stringify({ type: "message", client_id: id, text: text }));
    showTyping(true);
  }

  function connect() {
    setStatus(retry ? TEXT.offline : TEXT.connecting);
    var url = new URL("/v1/ws", base);
    url.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(url.toString());
    ws.onopen = function () {
      var hello = { type: "hello", v: 1, shop: shop };
      if (saved.conversation && saved.token) {
        hello.resume = { conversation: saved.conversation, token: saved.token, last_seq: lastSeq };
      }
      if (user && signature) hello.user = { id: user, signature: signature };
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = function (m) {
      var f;
      try { f = JSON.parse(m.data); } catch (e) { return; }
      if (f.type === "welcome") {
        retry = 0;
        setStatus("");
        if (f.conversation !== saved.conversation) { lastSeq = 0; log.textContent = ""; }
        saved.conversation = f.conversation;
        saved.token = f.token;
        save();
        Object.keys(pending).forEach(function (id) {   // unacked messages: the server dedups
          ws.send(JSON.stringify({ type: "message", client_id: id, text: pending[id] }));
        });
      } else if (f.type === "ack") {
        delete pending[f.client_id];
      } else if (f.type === "event") {
        if (f.from !== "shopper") showTyping(false);
        render(f);
      } else if (f.type === "typing") {
        showTyping(true);
      } else if (f.type === "rated") {
        note(TEXT.thanks);
      } else if (f.type === "error") {
        if (f.code === "bad_resume") {            // start over rather than lose the shopper
          saved = {}; save(); ws.close();
        } else {
          showTyping(false);
          note(f.message);
        }
      }
    };
    ws.onclose = function () {
      setStatus(TEXT.offline);
      var wait = Math.min(10000, 500 * Math.pow(2, retry++));
      setTimeout(connect, wait);
    };
  }

  var lastTyping = 0;
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      sendText(input.value);
      input.value = "";
    } else if (Date.now() - lastTyping > 3000 && ws && ws.readyState === 1) {
      lastTyping = Date.now();
      ws.send(JSON.stringify({ type: "typing" }));
    }
  });
  $(".send").onclick = function () { sendText(input.value); input.value = ""; input.focus(); };
  launcher.onclick = function () { panel.classList.add("open"); launcher.style.display = "none"; input.focus(); };
  $(".x").onclick = function () { panel.classList.remove("open"); launcher.style.display = ""; };
  if (script.getAttribute("data-open") === "true") launcher.onclick();
  connect();
})();
