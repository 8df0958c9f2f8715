/* The merchant / operator console over the admin REST API (/v1/admin). */
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) { sessionStorage.setItem("hd-key", fromHash); history.replaceState(null, "", location.pathname); }
  $("key").value = sessionStorage.getItem("hd-key") || "";
  var FIELDS = ["intent_threshold", "faq_threshold", "ambiguity_gap", "unhelpful_limit"];

  function shop() { return $("shop").value; }
  function api(method, path, body, raw) {
    var headers = { Authorization: "Bearer " + $("key").value.trim() };
    if (body !== undefined && !raw) headers["Content-Type"] = "application/json";
    return fetch(path, { method: method, headers: headers, body: raw ? body : (body === undefined ? undefined : JSON.stringify(body)) })
      .then(function (r) {
        return r.text().then(function (t) {
          var v = null;
          try { v = t ? JSON.parse(t) : null; } catch (e) { v = t; }
          if (!r.ok) { var err = new Error((v && v.error) || r.statusText); err.body = v; err.status = r.status; throw err; }
          return v;
        });
      });
  }
  function fail(e) { $("msg").textContent = e.message; }
  function cell(tr, text, tag) { var td = document.createElement(tag || "td"); td.textContent = text; tr.appendChild(td); }

  function loadShop() {
    $("msg").textContent = "";
    var s = shop();
    api("GET", "/v1/admin/shops/" + s + "/numbers").then(function (n) {
      var box = $("numbers");
      box.textContent = "";
      box.classList.remove("muted");
      [["顾客消息 messages", n.shopper_messages], ["会话 conversations", n.conversations],
       ["机器人解决率 automation", (n.automation_rate * 100).toFixed(1) + "%"],
       ["转人工率 handoff rate", (n.handoff_rate * 100).toFixed(1) + "%"],
       ["满意度 satisfaction", n.satisfaction == null ? "—" : n.satisfaction.toFixed(2) + " / 5 (" + n.ratings + ")"]]
        .forEach(function (k) {
          var d = document.createElement("span");
          d.className = "kpi";
          var b = document.createElement("b");
          b.textContent = k[1];
          d.appendChild(b);
          d.appendChild(document.createTextNode(k[0]));
          box.appendChild(d);
        });
      var reasons = Object.keys(n.handoffs_by_reason);
      if (reasons.length) {
        var p = document.createElement("div");
        p.textContent = "转人工原因 handoffs: " + reasons.map(function (r) { return r + " " + n.handoffs_by_reason[r]; }).join(", ");
        box.appendChild(p);
      }
    }).catch(fail);
    api("GET", "/v1/admin/shops/" + s + "/settings").then(function (v) {
      FIELDS.forEach(function (f) { $(f).value = v.policy[f]; });
    }).catch(fail);
  }

  function change() {
    var c = {};
    FIELDS.forEach(function (f) { if ($(f).value !== "") c[f] = Number($(f).value); });
    return c;
  }

  $("login").onclick = function () {
    sessionStorage.setItem("hd-key", $("key").value.trim());
    api("GET", "/v1/admin/shops").then(function (v) {
      var sel = $("shop");
      sel.textContent = "";
      v.shops.forEach(function (s) { var o = document.createElement("option"); o.value = o.textContent = s; sel.appendChild(o); });
      if (v.shops.length) loadShop(); else fail(new Error("no shop for this key"));
    }).catch(fail);
  };
  $("shop").onchange = loadShop;

  $("upload").onclick = function () {
    var f = $("file").files[0];
    var out = $("import-result");
    out.textContent = "";
    if (!f) return;
    var ext = f.name.split(".").pop().toLowerCase();
    f.arrayBuffer().then(function (buf) {
      return api("PUT", "/v1/admin/shops/" + shop() + "/faq?format=" + encodeURIComponent(ext), buf, true);
    }).then(function (v) {
      out.textContent = "已导入 imported " + v.imported + " entries";
      loadShop();
    }).catch(function (e) {
      out.className = "error";
      out.textContent = e.message;
      if (e.body && e.body.rows) {
        var t = document.createElement("table");
        var h = document.createElement("tr"); cell(h, "位置 where", "th"); cell(h, "问题 problem", "th"); t.appendChild(h);
        e.body.rows.forEach(function (r) { var tr = document.createElement("tr"); cell(tr, r.at); cell(tr, r.reason); t.appendChild(tr); });
        out.appendChild(t);
      }
    });
  };
  $("export").onclick = function (ev) {
    ev.preventDefault();
    fetch("/v1/admin/shops/" + shop() + "/faq?format=csv", { headers: { Authorization: "Bearer " + $("key").value.trim() } })
      .then(function (r) { return r.blob(); })
      .then(function (b) { var a = document.createElement("a"); a.href = URL.createObjectURL(b); a.download = shop() + "-faq.csv"; a.click(); });
  };
  $("search").onclick = function () {
    fetch("/v1/faq/search?shop=" + encodeURIComponent(shop()) + "&text=" + encodeURIComponent($("q").value))
      .then(function (r) { return r.json(); })
      .then(function (hits) {
        var t = $("hits");
        t.textContent = "";
        var h = document.createElement("tr"); ["score", "id", "matched", "answer"].forEach(function (x) { cell(h, x, "th"); }); t.appendChild(h);
        hits.forEach(function (hit) {
          var tr = document.createElement("tr");
          cell(tr, hit.score.toFixed(2)); cell(tr, hit.entry.id); cell(tr, hit.matched); cell(tr, hit.entry.answer.text);
          t.appendChild(tr);
        });
      }).catch(fail);
  };
  $("preview").onclick = function () {
    api("POST", "/v1/admin/shops/" + shop() + "/settings/preview", change()).then(function (p) {
      var pct = function (x) { return p.decisions ? (100 * x / p.decisions).toFixed(1) + "%" : "—"; };
      $("preview-result").textContent =
        "最近 " + p.decisions + " 条经过阈值判断的消息 (recent messages the thresholds decide): " +
        "答复 answer " + pct(p.current.answer) + " → " + pct(p.proposed.answer) + "，" +
        "澄清 clarify " + pct(p.current.clarify) + " → " + pct(p.proposed.clarify) + "，" +
        "兜底 fallback " + pct(p.current.fallback) + " → " + pct(p.proposed.fallback) + "；" +
        p.changed + " 条结果会改变 would change.";
    }).catch(fail);
  };
  $("apply").onclick = function () {
    api("PUT", "/v1/admin/shops/" + shop() + "/settings", change()).then(function () {
      $("preview-result").textContent = "已应用 applied";
      loadShop();
    }).catch(fail);
  };
  if ($("key").value) $("login").onclick();
})();
