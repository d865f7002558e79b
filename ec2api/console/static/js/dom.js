// Building elements: text is always set with textContent, never parsed as HTML.
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === 'text') node.textContent = value;
    else if (name === 'className') node.className = value;
    else if (name === 'onclick') node.addEventListener('click', value);
    else node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

export function status(message, isError = false) {
  const line = $('#status');
  line.textContent = message;
  line.classList.toggle('error', isError);
}

// Replaces a table body's rows; cells are text only.
export function fillTable(selector, rows) {
  const body = $(`${selector} tbody`);
  body.replaceChildren(...rows.map((cells) => el('tr', {}, ...cells.map((cell) => el('td', { text: cell })))));
}

export function options(select, values, { blank } = {}) {
  const list = blank === undefined ? [] : [el('option', { value: '', text: blank })];
  for (const [value, label] of values) list.push(el('option', { value, text: label }));
  select.replaceChildren(...list);
}

// A modal yes/no question; resolves true on Confirm.
export function confirmAction(question) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = question;
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'yes'), { once: true });
    dialog.returnValue = '';
    dialog.showModal();
  });
}
