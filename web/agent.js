/* The agent console: speaks the agent websocket (docs/protocol.md, "Agents"). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var ws = null, me = null, view = { waiting: [], mine: [] };
  var selected = null, transcripts = {}, tickets = {}, counter = Date.now();

  var fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
  if (fromHash) { sessionStorage.setItem("hd-agent", fromHash); history.replaceState(null, "", location.pathname); }
  $("token").value = sessionStorage.getItem("hd-agent") || "";

  function banner(text) { var b = $("banner"); b.textContent = text || ""; b.style.display = text ? "block" : "none"; }
  function send(frame) { if (ws && ws.readyState === 1) ws.send(JSON.stringify(frame)); }
  function ago(s) { return s < 60 ? s + "s" : Math.floor(s / 60) + "m" + (s % 60) + "s"; }

  function ticketRow(t, mine) {
    var div = document.createElement("div");
    div.className = "ticket " + t.reason + (t.conversation === selected ? " active" : "");
    div.setAttribute("data-conversation", t.conversation);
    var reason = document.createElement("div");
    reason.className = "reason";
    reason.textContent = (t.reason === "life_care" ? "⚠ 关爱生命 life-care" : t.reason) + " · " + t.queue;
    var meta = document.createElement("div");
    meta.className = "muted";
    meta.textContent = t.shop + " · " + t.conversation + " · " + (mine ? "" : "waiting ") + ago(t.waited_seconds) +
      (t.escalation && t.escalation !== "none" ? " · escalated " + t.escalation : "");
    div.appendChild(reason);
    div.appendChild(meta);
    div.onclick = function () { select(t.conversation); };
    return div;
  }

  function drawQueues() {
    ["mine", "waiting"].forEach(function (k) {
      var box = $(k);
      box.textContent = "";
      view[k].forEach(function (t) { tickets[t.conversation] = t; box.appendChild(ticketRow(t, k === "mine")); });
      if (!view[k].length) { var e = document.createElement("div"); e.className = "ticket muted"; e.textContent = "—"; box.appendChild(e); }
    });
  }

  function isMine(c) { return view.mine.some(function (t) { return t.conversation === c; }); }

  function drawChat() {
    var box = $("transcript");
    box.textContent = "";
    if (!selected) return;
    $("chat-title").textContent = selected + (isMine(selected) ? " · 我的 mine" : " · 排队 waiting");
    (transcripts[selected] || []).forEach(function (turn) {
      var d = document.createElement("div");
      d.className = "turn " + turn.speaker;
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = turn.speaker + " · " + (turn.at || "").slice(11, 19);
      d.appendChild(who);
      d.appendChild(document.createTextNode(turn.text));
      box.appendChild(d);
    });
    box.scrollTop = box.scrollHeight;
    var t = tickets[selected];
    var ev = $("evidence");
    ev.textContent = "";
    if (!t) return;
    ev.classList.remove("muted");
    var lines = [["原因 reason", t.reason], ["队列 queue", t.queue], ["规则 rule", t.evidence.rule]];
    (t.evidence.risk || []).forEach(function (h) { lines.push(["风险 " + h.kind, h.rule + ": " + h.evidence.join(", ")]); });
    (t.evidence.intents || []).slice(0, 3).forEach(function (i) { lines.push(["意图 intent", i[0] + " " + i[1].toFixed(2)]); });
    (t.evidence.faq || []).slice(0, 3).forEach(function (f) { lines.push(["FAQ", f.id + " " + f.score.toFixed(2) + " (" + f.matched + ")"]); });
    (t.notes || []).forEach(function (n) { lines.push(["备注 note", n.agent + ": " + n.text]); });
    lines.forEach(function (l) {
      var p = document.createElement("div");
      var b = document.createElement("b");
      b.textContent = l[0] + ": ";
      p.appendChild(b);
      p.appendChild(document.createTextNode(l[1]));
      ev.appendChild(p);
    });
  }

  function select(c) {
    selected = c;
    if (!transcripts[c]) send({ type: "open", conversation: c });
    drawQueues();
    drawChat();
  }

  function connect() {
    var token = $("token").value.trim();
    if (!token) { banner("请输入客服密钥 Enter an agent key"); return; }
    sessionStorage.setItem("hd-agent", token);
    if (ws) ws.close();
    ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/agent/ws");
    ws.onopen = function () { send({ type: "auth", v: 1, token: token }); };
    ws.onmessage = function (m) {
      var f = JSON.parse(m.data);
      if (f.type === "ready") {
        me = f.agent;
        banner("");
        $("me").textContent = me.name + " (" + me.skills.join(", ") + ")";
        $("status").value = me.status === "away" ? "online" : me.status;
      } else if (f.type === "queues") {
        view = f;
        drawQueues();
        if (selected) drawChat();
      } else if (f.type === "assigned") {
        tickets[f.ticket.conversation] = f.ticket;
        transcripts[f.ticket.conversation] = f.transcript;
        if (!selected || f.ticket.reason === "life_care") select(f.ticket.conversation);
      } else if (f.type === "transcript") {
        tickets[f.ticket.conversation] = Object.assign({}, tickets[f.ticket.conversation] || {}, f.ticket);
        transcripts[f.ticket.conversation] = f.transcript;
        drawChat();
      } else if (f.type === "event") {
        var list = transcripts[f.conversation] = transcripts[f.conversation] || [];
        list.push({ speaker: f.event.from, text: f.event.text, at: f.event.at });
        if (f.conversation === selected) drawChat();
      } else if (f.type === "typing") {
        if (f.conversation === selected) $("chat-title").textContent = selected + " · 顾客正在输入… typing";
      } else if (f.type === "error") {
        banner(f.code + ": " + f.message);
      }
    };
    ws.onclose = function (e) {
      if (e.code === 1012) { banner("服务器重启中，正在重连… server restarting"); setTimeout(connect, 1500); }
    };
  }

  $("connect").onclick = connect;
  $("status").onchange = function () { send({ type: "status", status: $("status").value }); };
  $("take").onclick = function () { if (selected) send({ type: "take", conversation: selected }); };
  $("transfer").onclick = function () { if (selected) send({ type: "transfer", conversation: selected, queue: $("queue").value }); };
  $("add-note").onclick = function () {
    var text = $("note").value.trim();
    if (selected && text) { send({ type: "note", conversation: selected, text: text }); $("note").value = ""; }
  };
  $("resolve").onclick = function () { if (selected) send({ type: "resolve", conversation: selected }); };
  function reply() {
    var text = $("reply").value.trim();
    if (!selected || !text) return;
    send({ type: "reply", conversation: selected, client_id: "a" + (counter++).toString(36), text: text });
    $("reply").value = "";
  }
  $("send").onclick = reply;
  var lastTyping = 0;
  $("reply").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); reply(); }
    else if (selected && Date.now() - lastTyping > 3000) { lastTyping = Date.now(); send({ type: "typing", conversation: selected }); }
  });
  setInterval(function () {   // waiting times tick between server updates
    ["mine", "waiting"].forEach(function (k) { view[k].forEach(function (t) { t.waited_seconds += 1; }); });
    drawQueues();
  }, 1000);
  if ($("token").value) connect();
})();
