# The hub image for docker-compose: FlaskHub with PostgreSQL support.
FROM python:3.11-slim
WORKDIR /srv/app
COPY setup.cfg pyproject.toml README.md wsgi.py ./
COPY app ./app
COPY proxy/__init__.py proxy/client.py proxy/launcher.py proxy/package.json proxy/package-lock.json ./proxy/
RUN pip install --no-cache-dir ".[postgres]"
EXPOSE 8081
CMD ["flaskhub", "run"]
