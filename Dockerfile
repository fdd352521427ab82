# The hub image for docker-compose: FlaskHub with PostgreSQL support and the Docker SDK.
FROM python:3.11-slim
WORKDIR /srv/app
# The dependencies first, in a layer of their own that only setup.cfg changes rebuild
# (an empty README and packages stand in for the real ones here).
COPY setup.cfg pyproject.toml requirements.lock ./
RUN mkdir app proxy && touch README.md app/__init__.py proxy/__init__.py \
    && pip install --no-cache-dir ".[postgres]" -c requirements.lock \
    && pip uninstall -y -q flaskhub && rm -rf README.md app proxy build ./*.egg-info
COPY README.md wsgi.py ./
COPY app ./app
COPY proxy/*.py proxy/package.json proxy/package-lock.json ./proxy/
RUN pip install --no-cache-dir --no-deps . && rm -rf build ./*.egg-info
EXPOSE 8081
CMD ["flaskhub", "run"]
