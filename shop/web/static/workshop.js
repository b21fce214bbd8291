// The villager's board: count the claim's lease down and show the warning (with the
// button to keep the task) once five minutes are left. The server decided both at
// render time; this only keeps them current while the page stays open.
(function () {
  "use strict";
  var boxes = document.querySelectorAll("[data-lease-left-s]");
  Array.prototype.forEach.call(boxes, function (box) {
    var started = Date.now();
    var left0 = parseInt(box.getAttribute("data-lease-left-s"), 10);
    var warnAt = parseInt(box.getAttribute("data-warning-s"), 10);
    var clock = box.querySelector("[data-countdown]");
    var warning = box.querySelector(".lease-warning");
    var over = box.querySelector("#lease-over");
    var template = clock.textContent;
    var shown = (left0 / 60 | 0) + ":" + ("0" + left0 % 60).slice(-2);
    function tick() {
      var left = Math.max(0, left0 - Math.floor((Date.now() - started) / 1000));
      var text = (left / 60 | 0) + ":" + ("0" + left % 60).slice(-2);
      clock.textContent = template.split(shown).join(text);
      var warningText = warning.querySelector("p");
      if (warningText && warningText.dataset.template === undefined) {
        warningText.dataset.template = warningText.textContent;
      }
      if (warningText) warningText.textContent = warningText.dataset.template.split(shown).join(text);
      warning.hidden = left > warnAt || left === 0;
      over.hidden = left > 0;
      if (left > 0) window.setTimeout(tick, 1000);
    }
    tick();
  });
})();
