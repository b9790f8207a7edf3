// The report page fills in check by check: poll its progress, and show the whole report once complete.
(function () {
  "use strict";
  function poll(section) {
    var url = section.getAttribute("data-progress");
    var tries = 0;
    function tick() {
      tries += 1;
      if (tries > 600) { return; }  // ten minutes at most: the page then says to refresh
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (r) {
          if (r.status === 401 || r.status === 403 || r.status === 404) {
            // Signed out or no longer allowed: say so rather than wait for ever.
            section.querySelector(".meaning").textContent = "登录已过期或无权查看：请重新登录后打开本报告。";
            tries = Infinity;
          }
          if (!r.ok) { throw new Error(String(r.status)); }
          return r.json();
        })
        .then(function (body) {
          body.checks.forEach(function (c) {
            var item = section.querySelector('[data-check="' + c.check + '"] .state');
            if (item) { item.textContent = c.word; item.className = "state " + c.status; }
          });
          if (body.status === "complete") { window.location.reload(); } else { window.setTimeout(tick, 1000); }
        })
        .catch(function () { if (tries < 600) { window.setTimeout(tick, 3000); } });
    }
    window.setTimeout(tick, 500);
  }
  document.addEventListener("DOMContentLoaded", function () {
    var section = document.getElementById("report");
    if (section && section.getAttribute("data-status") !== "complete") { poll(section); }
    document.querySelectorAll("[data-print]").forEach(function (b) {
      b.addEventListener("click", function () { window.print(); });
    });
  });
})();
