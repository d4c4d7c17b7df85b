// The default-model list and its "another model" box in step (the form works without this):
// typing a name selects "another model"; choosing a listed model empties the box.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".model-choice").forEach(function (box) {
    var select = box.querySelector("select");
    var input = box.querySelector("input[type=text]");
    var other = box.dataset.other;
    input.addEventListener("input", function () {
      if (input.value.trim()) select.value = other;
    });
    select.addEventListener("change", function () {
      if (select.value !== other) input.value = "";
      else input.focus();
    });
  });
});
