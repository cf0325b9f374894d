// The width of a node card, the same on the editor's canvas (canvas.js) and on the run page's
// graph (run-graph.js), so a definition's saved positions lay out alike on both.
export const NODE_W = 228;
