# The hub image for docker-compose: FlaskHub with PostgreSQL support and the Docker SDK.
FROM python:3.11-slim
WORKDIR /srv/app
# The dependencies first, in a layer of their own that a change of the code does not rebuild.
COPY setup.cfg pyproject.toml README.md ./
RUN mkdir app proxy && touch app/__init__.py proxy/__init__.py \
    && pip install --no-cache-dir ".[postgres]" \
    && pip uninstall -y -q flaskhub && rm -rf app proxy build ./*.egg-info
COPY wsgi.py ./
COPY app ./app
COPY proxy/__init__.py proxy/client.py proxy/launcher.py proxy/package.json proxy/package-lock.json ./proxy/
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info
EXPOSE 8081
CMD ["flaskhub", "run"]
