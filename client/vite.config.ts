import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The app calls the API with relative URLs (`/posts`, `/posts/create`, ...), so one build works behind
// the Ingress at posts.com and behind the local router at http://localhost:3000: no proxy config here.
export default defineConfig({
  plugins: [react()],
  server: {
    // Under `skaffold dev` this dev server sits behind the Ingress, which passes on the browser's
    // `Host: posts.com`; Vite answers 403 "Blocked request" to any host that is not localhost, an IP
    // address or listed here. Only the Ingress's host (infra/k8s/ingress-srv.yaml; a test checks they agree).
    allowedHosts: ['posts.com'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Bootstrap's CSS is large but only CSS; the JS budget (≤ 80 kB gzipped) is checked by `npm run bench`.
    chunkSizeWarningLimit: 300,
  },
});
