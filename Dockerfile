# Manifold's image: `npm ci` (which also builds the web console and the server build), then `npm start` as an unprivileged
# user. Used by the example docker-compose.yml (three replicas, README "Running several replicas").
FROM node:24-bookworm-slim
WORKDIR /app
COPY . .
RUN npm ci --no-audit --no-fund \
  && mkdir -p /var/lib/manifold node_modules/.cache \
  && chown node:node /var/lib/manifold node_modules/.cache
ENV MANIFOLD_DATA_DIR=/var/lib/manifold
USER node
EXPOSE 5000 5001
CMD ["npm", "start"]
