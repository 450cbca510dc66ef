import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The app calls the API with relative URLs (`/posts`, `/posts/create`, ...), so one build works behind
// the Ingress at posts.com and behind the local router at http://localhost:3000: no proxy config here.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // Bootstrap's CSS is large but only CSS; the JS budget (≤ 80 kB gzipped) is checked by `npm run bench`.
    chunkSizeWarningLimit: 300,
  },
});
