// Card entry with Stripe.js (or the local emulator's stand-in): top-ups and saving cards.
// A new card is first confirmed on a SetupIntent; the server then charges it (or just keeps it).
(function () {
  const form = document.getElementById("top-up-form") || document.getElementById("add-card-form");
  if (!form || typeof Stripe === "undefined") return;

  const stripe = Stripe(form.dataset.stripeKey);
  const csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
  const errorBox = document.getElementById("payment-error");
  const button = document.getElementById("pay-button");
  const newCardBox = document.getElementById("new-card");
  const setupField = document.getElementById("id_setup_intent");
  const card = stripe.elements().create("card");
  card.mount("#card-element");

  function showError(message) {
    errorBox.textContent = message;
    errorBox.classList.remove("d-none");
    button.disabled = false;
  }

  function usingNewCard() {
    const chosen = form.querySelector("input[name=card]:checked");
    return !chosen || chosen.value === "";
  }

  async function confirmNewCard() {
    const response = await fetch(form.dataset.setupUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || "Could not start card entry.");
    const result = await stripe.confirmCardSetup(body.client_secret, { payment_method: { card: card } });
    if (result.error) throw new Error(result.error.message || "Your card was declined.");
    return result.setupIntent.id;
  }

  async function topUp() {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRFToken": csrf, Accept: "application/json" },
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || "The payment could not start.");
    if (body.client_secret) {
      // 3-D Secure: the bank wants the cardholder to confirm. The outcome arrives by webhook.
      await stripe.confirmCardPayment(body.client_secret);
    }
    window.location.assign(body.redirect);
  }

  form.querySelectorAll("[data-amount]").forEach((preset) => {
    preset.addEventListener("click", () => { form.querySelector("#id_amount").value = preset.dataset.amount; });
  });
  form.querySelectorAll("input[name=card]").forEach((radio) => {
    radio.addEventListener("change", () => newCardBox.classList.toggle("d-none", !usingNewCard()));
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.classList.add("d-none");
    button.disabled = true;
    try {
      const isTopUp = form.id === "top-up-form";
      setupField.value = !isTopUp || usingNewCard() ? await confirmNewCard() : "";
      if (isTopUp) await topUp();
      else form.submit();
    } catch (error) {
      showError(error.message || String(error));
    }
  });
})();
