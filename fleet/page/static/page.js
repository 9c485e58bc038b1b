// The delivery page's own script: auto-refresh, selecting dead letters, and replaying or
// purging them in chunks with a progress bar. Actions carry the page's CSRF token.
(function () {
  "use strict";
  var token = document.querySelector('meta[name="csrf-token"]').content;

  // -- refresh every 30 s, when asked (remembered in this browser) ----------------------------
  var refresh = document.getElementById("auto-refresh");
  if (refresh) {
    refresh.checked = window.localStorage.getItem("pwf-refresh") === "on";
    var timer = null;
    var arm = function () {
      if (timer) { window.clearTimeout(timer); timer = null; }
      if (refresh.checked) { timer = window.setTimeout(function () { window.location.reload(); }, 30000); }
    };
    refresh.addEventListener("change", function () {
      window.localStorage.setItem("pwf-refresh", refresh.checked ? "on" : "off");
      arm();
    });
    arm();
  }

  // -- dead letters: select, then replay or purge -----------------------------------------------
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = all.checked; });
    });
  }

  var status = document.getElementById("action-status");
  var progress = document.getElementById("progress");
  var CHUNK = 20;

  function selected(button) {
    if (button.dataset.ids) { return button.dataset.ids.split(","); }
    return Array.prototype.map.call(document.querySelectorAll("input.pick:checked"), function (box) {
      return box.value;
    });
  }

  function post(url, ids) {
    return window.fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify({ ids: ids })
    }).then(function (response) {
      if (!response.ok) {
        return response.text().then(function (text) {
          throw new Error("HTTP " + response.status + ": " + text.slice(0, 200));
        });
      }
      return response.json();
    });
  }

  function markDone(ids) {
    ids.forEach(function (id) {
      var row = document.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      if (row) {
        row.classList.add("done");
        var box = row.querySelector("input.pick");
        if (box) { box.checked = false; box.disabled = true; }
      }
    });
  }

  function run(button) {
    var ids = selected(button);
    var action = button.dataset.action;
    var past = action === "replay" ? "replayed" : "purged";
    if (!ids.length) { status.textContent = "select entries first"; return; }
    if (action === "purge" && !window.confirm("Purge " + ids.length + " dead letter(s) for good?")) { return; }
    var buttons = document.querySelectorAll("button.act");
    buttons.forEach(function (b) { b.disabled = true; });
    progress.hidden = false;
    progress.max = ids.length;
    progress.value = 0;
    var done = 0, acted = 0;
    status.textContent = action + "ing " + ids.length + "…";
    var chunks = [];
    for (var i = 0; i < ids.length; i += CHUNK) { chunks.push(ids.slice(i, i + CHUNK)); }
    var step = chunks.reduce(function (previous, chunk) {
      return previous.then(function () {
        return post(button.dataset.url, chunk).then(function (answer) {
          done += chunk.length;
          acted += answer.done;
          progress.value = done;
          markDone(chunk);
          status.textContent = past + " " + acted + " of " + ids.length;
        });
      });
    }, Promise.resolve());
    step.then(function () {
      var gone = ids.length - acted;
      status.textContent = past + " " + acted + " of " + ids.length +
        (gone ? " (" + gone + " were already replayed or purged)" : "") + ": done";
      status.dataset.state = "done";
    }).catch(function (error) {
      status.textContent = action + " stopped: " + error.message;
      status.dataset.state = "failed";
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
    });
  }

  document.querySelectorAll("button.act").forEach(function (button) {
    button.addEventListener("click", function () { run(button); });
  });
})();
