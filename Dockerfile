# syntax=docker/dockerfile:1
# Build stage: type-check and compile with the dev dependencies.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY plugins ./plugins
RUN npx tsc -p tsconfig.build.json
# tsc copies no templates: the HAProxy agent reads its default one beside the compiled
# adapter (dist/src/adapters/haproxy/template.js → ./templates/haproxy.cfg.hbs).
COPY src/adapters/haproxy/templates ./dist/src/adapters/haproxy/templates

# Runtime stage: production dependencies and compiled JavaScript only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY acl.yaml switchyard.example.yaml ./
USER node
EXPOSE 3000
ENTRYPOINT ["node", "bin/switchyard.js"]
CMD ["serve"]
