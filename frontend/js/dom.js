// Small DOM helpers. Everything that carries data goes in through textContent or CSSOM, never HTML strings
// (result.json labels once reached the legend through innerHTML).

export const $ = (sel, root = document) => root.querySelector(sel);
export const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];

/** el("span", {className: "sw", text: name, style: {background: color}}, ...children) */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  const { text, style, dataset, ...rest } = props;
  if (text !== undefined) node.textContent = String(text);
  if (style) Object.assign(node.style, style);  // CSSOM: an invalid value is dropped, never parsed as markup
  if (dataset) Object.assign(node.dataset, dataset);
  Object.assign(node, rest);
  node.append(...children);
  return node;
}
